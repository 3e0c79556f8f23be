"""What one run reads (`RunInputs`, fixed once the data is loaded) and what it has made so far
(`RunState`, growing stage by stage until the judge turns it into target records)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compress.core.artifact import Artifact
from compress.core.cache import Cache
from compress.core.environment import cpu_info, python_version, versions
from compress.core.hashing import file_sha256, json_sha256
from compress.core.progress import Reporter
from compress.core.records import CpuInfo, DataRecord, Environment, Evaluation, StageRecord
from compress.data.splits import Split, Splits, load_pool, load_splits, num_labels
from compress.models.hub import resolve_hub
from compress.pipeline.judge import Candidate
from compress.recipe.load import LoadedRecipe
from compress.runtimes import Predict


@dataclass(frozen=True)
class RunInputs:
    """What every step of one run reads: the recipe, the data, the environment, the cache."""

    loaded: LoadedRecipe
    splits: Splits
    n_labels: int
    environment: Environment
    data: DataRecord
    cache: Cache
    reporter: Reporter
    pool: Split | None = None  # [evaluation.pool]'s rows, in their drawing order
    pool_id: str = ""  # what the pool is, by content (part of its answers' cache keys)
    hub_commit: str | None = None  # the commit a hub model's revision named when the run began

    def environment_key(self) -> dict:
        """The part of the environment that can change a measured figure (cache keys)."""
        return {"versions": self.environment.versions, "cpu": self.environment.cpu.to_json()}


def read_inputs(loaded: LoadedRecipe, cache: Cache, reporter: Reporter) -> RunInputs:
    """Load the data and describe it, and the environment, by content."""
    recipe = loaded.recipe
    splits = load_splits(recipe.data)
    cpu = cpu_info()
    environment = Environment(
        python=python_version(),
        versions=versions(),
        cpu=CpuInfo(model=cpu["model"], machine=cpu["machine"], isa=tuple(cpu["isa"])),
    )
    data = DataRecord(
        spec=recipe.data.model_dump(mode="json", exclude={"train", "dev", "test"}),
        files={k: file_sha256(getattr(recipe.data, k)) for k in ("train", "dev", "test")},
    )
    n_labels = num_labels(recipe.data, splits.train)
    pool, pool_id = None, ""
    if recipe.evaluation.pool is not None:
        spec = recipe.evaluation.pool
        pool = load_pool(recipe.data, spec)
        source = file_sha256(spec.file) if spec.file is not None else data.files["train"]
        pool_id = json_sha256({"spec": spec.model_dump(mode="json", exclude={"file"}), "source": source})
    model = recipe.model  # resolved once: the whole run reads the one commit, whatever moves meanwhile
    hub_commit = resolve_hub(model.hub, model.revision).commit if model.hub is not None else None
    return RunInputs(loaded, splits, n_labels, environment, data, cache, reporter, pool, pool_id, hub_commit)


@dataclass(frozen=True)
class Measured:
    """An artifact's evaluation and its predicted label per test row (what paired statistics use)."""

    evaluation: Evaluation
    predictions: np.ndarray


@dataclass(frozen=True)
class Made:
    """An artifact and the stage that made it ("source" for the starting checkpoint)."""

    artifact: Artifact
    stage: str


@dataclass
class RunState:
    """What the run has made so far."""

    artifacts: dict[str, Artifact] = field(default_factory=dict)  # kind -> latest
    by_stage: dict[str, list[Artifact]] = field(default_factory=dict)  # what each stage made
    by_pair: dict[tuple[str, str], Made] = field(default_factory=dict)  # (runtime, precision) -> latest
    by_name: dict[str, Made] = field(default_factory=dict)  # built for one target (or perturbed for it)
    measured: dict[str, Measured] = field(default_factory=dict)  # artifact sha256 -> measurement
    stages: list[StageRecord] = field(default_factory=list)
    reference: Made | None = None  # the first FP32 PyTorch model a stage made: the baseline
    perturbed: dict[str, float] = field(default_factory=dict)  # target -> noise std (test hook)
    references: dict[str, Predict] = field(
        default_factory=dict
    )  # sha256 -> memoized predictor (release matrix)

    def add(self, made: Made) -> None:
        """Record an artifact a stage made."""
        a = made.artifact
        self.artifacts[a.kind] = a
        self.by_stage.setdefault(made.stage, []).append(a)
        self.by_pair[(a.runtime, a.precision)] = made
        self.by_name.update({target: made for target in a.serves})
        if self.reference is None and (a.runtime, a.precision) == ("torch", "fp32"):
            self.reference = made

    def made_for(self, name: str, runtime: str, precision: str) -> Made | None:
        """What serves a target: built for it by name, else the latest of its runtime/precision."""
        return self.by_name.get(name) or self.by_pair.get((runtime, precision))

    def candidate(self, name: str, runtime: str, precision: str) -> Candidate | str:
        """What serves a target, measured, as the judge takes it; or why nothing does."""
        made = self.made_for(name, runtime, precision)
        if made is None:
            bad = [s for s in self.stages if s.status != "ok"]
            if bad:
                return f"stage '{bad[0].name}' {bad[0].status}: {bad[0].reason or ''}"
            return f"no stage produced a {runtime}/{precision} artifact"
        stage = self.stage(made.stage)
        measured = self.measured[made.artifact.sha256]
        return Candidate(
            stage=made.stage,
            artifact_sha256=made.artifact.sha256,
            evaluation=measured.evaluation,
            predictions=measured.predictions,
            stage_failure=stage.reason if stage is not None and stage.status == "failed" else None,
            proxy=made.artifact.proxy,
            perturbed=self.perturbed.get(name),
        )

    def stage(self, name: str) -> StageRecord | None:
        """The record of a stage that has run."""
        return next((s for s in self.stages if s.name == name), None)
