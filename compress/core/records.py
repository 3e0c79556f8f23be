"""The manifest, typed: frozen records that the runner writes once and report, regression, plots,
verify and `compare` read by field.

Each record is a pydantic model with `to_json()` / `from_json()`. The JSON layout is the one tools
rely on (`verdict`, `targets[].name/metric/drop/verdict`, `files[].path/sha256/bytes`, ...), and
`from_json` reads every schema this package has written (2: before the typed records, 3: now), so an
old bundle still verifies, compares and reports. Unknown keys are ignored on reading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from compress.core.errors import CompressError

MANIFEST_SCHEMA = 3
READABLE_SCHEMAS = (2, 3)


class Record(BaseModel):
    """A frozen, JSON-round-tripping record."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-able data, in field order."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """Read a record from parsed JSON; pydantic.ValidationError when it does not fit."""
        return cls.model_validate(data)


Outcome = Literal["pass", "fail", "inconclusive"]


class Gate(Record):
    """One gate's outcome: which gate, pass / fail / inconclusive, whether it lets the run pass, the
    figure, its limit and a sentence."""

    gate: str  # built | stage | accuracy | agreement | latency | size | shapes | regression
    passed: bool  # lets the run pass: a pass, or an inconclusive gate under on_inconclusive = "pass"
    value: float | None
    limit: float | None
    message: str
    within_noise: bool = False  # the budget lies inside the interval (the gate is inconclusive)
    outcome: Outcome | None = None  # None in bundles before three outcomes: read `result`
    rows: int | None = None  # the rows the decision rests on (test rows, plus pool rows drawn)

    @property
    def result(self) -> Outcome:
        """pass | fail | inconclusive (older bundles: from `passed`)."""
        return self.outcome or ("pass" if self.passed else "fail")


class Latency(Record):
    """Median and p90 milliseconds of one forward pass at batch x sequence."""

    batch: int
    sequence: int
    median_ms: float
    p90_ms: float

    @property
    def shape(self) -> str:
        """ "BxS"."""
        return f"{self.batch}x{self.sequence}"


class DropStatistics(Record):
    """Drop (reference - candidate, in points) with a confidence interval and the discordant rows."""

    drop: float
    low: float
    high: float
    confidence: float
    rows: int
    disagreements: int  # rows whose predicted label differs
    reference_right_candidate_wrong: int
    reference_wrong_candidate_right: int
    mcnemar_p: float | None  # exact two-sided test on the discordant rows (accuracy only)
    paired: bool  # False when only the candidate's predictions were available
    pool_rows: int = 0  # rows drawn from [evaluation.pool] beyond the test rows
    looks: int = 1  # how many times the interval was computed (each at `confidence`, adjusted)


class Budgets(Record):
    """A target's budgets as the recipe set them."""

    max_accuracy_drop: float
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    latency_shape: str = "1x128"
    max_disagreement: float | None = None
    confidence: float = 0.95
    on_inconclusive: str = "fail"
    decision: str | None = None  # bundles before three outcomes: "point" or "upper"


class TargetRecord(Record):
    """A target's figures, gates and verdict (pass | fail | inconclusive | proxy)."""

    name: str
    runtime: str
    precision: str
    required: bool = True
    metric_name: str = "accuracy"
    baseline: float | None = None
    baseline_from: str | None = None
    budgets: Budgets
    statistics: DropStatistics | None = None
    metric: float | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    drop: float | None = None
    latency: Latency | None = None
    size_mb: float | None = None
    artifact: str | None = None  # its folder in the bundle
    stage: str | None = None  # the stage that made it
    artifact_sha256: str | None = None
    proxy: str | None = None  # why a stand-in was measured instead (no engine built here)
    perturbed_weights: float | None = None
    gates: tuple[Gate, ...] = ()
    verdict: Literal["pass", "fail", "proxy", "inconclusive"]


class ShapeResult(Record):
    """An artifact against its reference at one batch x sequence."""

    rows: int
    label_agreement: float | None
    max_abs_logit_diff: float
    error: str | None = None
    latency: Latency | None = None


class ReleaseMatrix(Record):
    """An ONNX artifact at every release shape, against the FP32 PyTorch model it came from."""

    reference: str
    shapes: dict[str, ShapeResult]
    problems: tuple[str, ...] = ()


class Evaluation(Record):
    """An artifact measured in its own runtime on the test split."""

    runtime: str
    precision: str
    rows: int
    accuracy: float
    macro_f1: float
    latency: dict[str, Latency]  # "BxS" -> latency
    size_bytes: int
    release_matrix: ReleaseMatrix | None = None

    def metric(self, name: str) -> float:
        """The named metric ("accuracy" or "macro_f1")."""
        return self.accuracy if name == "accuracy" else self.macro_f1


class ArtifactRecord(Record):
    """An artifact as a stage's entry lists it (folder relative to the stage's cache entry)."""

    kind: str
    runtime: str
    precision: str
    folder: str
    serves: tuple[str, ...] = ()
    proxy: str | None = None
    sha256: str
    bytes: int


class StageRecord(Record):
    """A stage of the run: ok | failed | not run, its timing and metrics, what it made."""

    name: str
    status: Literal["ok", "failed", "not run"]
    reason: str | None = None
    cached: bool | None = None
    seconds: float | None = None
    run_seconds: float | None = None
    steps: tuple[tuple[str, float], ...] = ()  # where a fresh build's time went: bars, steps, evaluations
    cache_key: str | None = None  # `compress cache explain RECIPE STAGE` shows what it hashes
    metrics: dict[str, Any] = Field(default_factory=dict)
    artifacts: tuple[ArtifactRecord, ...] = ()
    evaluations: tuple[Evaluation, ...] = ()

    @property
    def notes(self) -> list[str]:
        """The lines a stage asks the report to show under it."""
        return list(self.metrics.get("notes", []))


class CpuInfo(Record):
    """The CPU a run measured latency on."""

    model: str
    machine: str = ""
    isa: tuple[str, ...] = ()


class Environment(Record):
    """Python, the versions that decide what a stage computes, and the CPU. Written flat
    ({"python", "torch", ..., "cpu"}), as tools read it."""

    python: str
    versions: dict[str, str] = Field(default_factory=dict)
    cpu: CpuInfo

    @model_validator(mode="before")
    @classmethod
    def _read_flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "versions" not in data:
            flat = dict(data)
            return {"python": flat.pop("python", None), "cpu": flat.pop("cpu", None), "versions": flat}
        return data

    @model_serializer
    def _write_flat(self) -> dict[str, Any]:
        return {"python": self.python, **self.versions, "cpu": self.cpu.to_json()}


class ChainRecord(Record):
    """One file of an `extends` chain as it was read."""

    path: str
    sha256: str


class RecipeRecord(Record):
    """Which recipe ran: where it was, its copy in the bundle (the resolved TOML when it extends
    others or --set was given), its hash, every resolved value, and what it was composed from."""

    path: str
    copy_name: str = Field("recipe.toml", alias="copy")
    sha256: str
    resolved: dict[str, Any]
    chain: list[ChainRecord] = Field(default_factory=list)  # the recipe run first, then its bases
    overrides: list[str] = Field(default_factory=list)  # --set items, in order


class DataRecord(Record):
    """The data a run read: the [data] settings (paths aside) and each file's sha256."""

    spec: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)


class ModelRecord(Record):
    """The starting model a run read: which [model] source and, for a hub model, the commit its
    revision named then (keyed on, so a moved tag or branch rebuilds every stage)."""

    source: str  # packaged | path | tiny | hub
    hub: str | None = None
    revision: str | None = None  # as the recipe asked ("main" when it gave none)
    hub_commit: str | None = None
    sha256: str | None = None  # the starting checkpoint as built: weights, config, tokenizer
    cache_key: str | None = None  # `compress cache explain` shows what it hashes under "source"


class FileRecord(Record):
    """A bundle file: path relative to the bundle, sha256, size."""

    path: str
    sha256: str
    bytes: int


class Tolerances(Record):
    """How much worse than the baseline run a target may get before it is a regression."""

    max_metric_drop: float = 0.5  # points
    max_latency_increase: float | None = None  # fraction of the old latency; None = not judged
    max_size_increase: float | None = 0.05  # fraction of the old size; None = not judged


class Figures(Record):
    """One side of a regression row: what a target measured in one run."""

    metric_name: str = "metric"
    metric: float | None = None
    latency_ms: float | None = None
    latency_shape: str | None = None
    size_mb: float | None = None
    verdict: str | None = None
    artifact_sha256: str | None = None


class ComparisonRow(Record):
    """A target in both runs: figures, deltas, regression gates and a status word."""

    name: str
    old: Figures | None = None  # None: the target is new (or, for `new`, removed)
    new: Figures | None = None
    gates: tuple[Gate, ...] = ()
    status: Literal["added", "removed", "regressed", "changed", "unchanged"]
    metric_drop: float | None = None
    latency_ratio: float | None = None
    size_ratio: float | None = None
    same_artifact: bool | None = None

    @field_validator("old", "new", mode="before")
    @classmethod
    def _empty_side(cls, value: Any) -> Any:
        return None if value == {} else value  # schema 2 wrote {} for a missing side


class RunRef(Record):
    """Which run a comparison side is."""

    recipe_name: str | None = None
    run_id: str | None = None
    source: str | None = None  # how it was found: "latest", a path


class Comparison(Record):
    """A run against a baseline run, target by target, and what else changed between them."""

    baseline: RunRef
    candidate: RunRef
    tolerances: Tolerances
    changed: tuple[str, ...] = ()
    targets: tuple[ComparisonRow, ...] = ()
    breached: bool


class Manifest(Record):
    """Everything about a run, as written to manifest.json (its integrity seal is added on writing)."""

    schema_version: int = Field(MANIFEST_SCHEMA, alias="schema")
    recipe_name: str
    run_id: str
    created: str
    verdict: Literal["pass", "fail"]
    seconds: float
    recipe: RecipeRecord
    data: DataRecord
    environment: Environment
    model: ModelRecord | None = None  # None in bundles written before it was recorded
    stages: tuple[StageRecord, ...]
    targets: tuple[TargetRecord, ...]
    regression: Comparison | None = None
    pareto: str | None = None
    files: tuple[FileRecord, ...] = ()

    def target(self, name: str) -> TargetRecord | None:
        """The target of that name, or None."""
        return next((t for t in self.targets if t.name == name), None)


def load_manifest(where: Path) -> Manifest:
    """A bundle folder or its manifest.json, read into records; CompressError naming the file when
    it is missing, unreadable, or not a manifest this version can read."""
    path = where / "manifest.json" if where.is_dir() else where
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CompressError(f"{path}: no such manifest (give a bundle folder or its manifest.json)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CompressError(f"{path}: not a readable manifest: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("targets"), list):
        raise CompressError(f"{path}: not a compress manifest (no targets list)")
    if raw.get("schema") not in READABLE_SCHEMAS:
        raise CompressError(
            f"{path}: manifest schema {raw.get('schema')!r}; this version of compress reads "
            + ", ".join(map(str, READABLE_SCHEMAS))
        )
    try:
        return Manifest.from_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where_ = ".".join(str(p) for p in first["loc"])
        raise CompressError(f"{path}: not a compress manifest: {where_}: {first['msg']}") from None
