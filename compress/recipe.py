"""The recipe: a TOML file, validated once here so that stages can trust what they receive.

Every problem found (schema, missing files, data columns, label values) is reported together in
one `CompressError` naming the recipe file, the key and, where it can be found, the line.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from compress.errors import CompressError
from compress.hashing import json_sha256

PACKAGED_MODELS = ("all-MiniLM-L6-v2",)
Runtime = Literal["torch", "onnxruntime", "tensorrt"]
Precision = Literal["fp32", "fp16", "int8"]
Isa = Literal["auto", "avx512_vnni", "avx2", "arm64"]  # the CPU family INT8 kernels are chosen for
PositiveFloat = Annotated[float, Field(gt=0)]
# Strict models refuse "32" for an int; paths are the one place a string must become something else
PathField = Annotated[Path, Field(strict=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TinyBert(_Strict):
    """A randomly initialised BERT built from a config: for tests and smoke runs."""

    hidden_size: int = Field(32, ge=8, le=1024)
    num_hidden_layers: int = Field(2, ge=1, le=24)
    num_attention_heads: int = Field(2, ge=1, le=32)
    intermediate_size: int = Field(64, ge=8, le=8192)
    dropout: float = Field(0.1, ge=0, lt=1)  # hidden and attention dropout, as BertConfig's default

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TinyBert:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        return self


class ModelSpec(_Strict):
    packaged: Literal[PACKAGED_MODELS] | None = None  # type: ignore[valid-type]
    path: PathField | None = None
    tiny: TinyBert | None = None
    seed: int = 0  # initialises the new classification head (and a tiny model's weights)

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSpec:
        given = [k for k in ("packaged", "path", "tiny") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of packaged, path, tiny (got {', '.join(given) or 'none'})")
        return self


class DataSpec(_Strict):
    train: PathField
    dev: PathField
    test: PathField
    format: Literal["tsv", "csv", "jsonl"] | None = None
    header: bool = True
    text_column: str | int = "sentence"
    label_column: str | int = "label"
    label_names: list[str] | None = Field(None, min_length=2)
    max_length: int = Field(128, ge=8, le=512)
    train_rows: int | None = Field(None, ge=1)
    dev_rows: int | None = Field(None, ge=1)
    test_rows: int | None = Field(None, ge=1)
    seed: int = 0


class TrainSettings(_Strict):
    """How a model is trained: shared by [finetune] and [prune.recovery]."""

    epochs: int = Field(1, ge=1, le=100)
    batch_size: int = Field(32, ge=1, le=4096)
    learning_rate: PositiveFloat = 1e-4
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    bucket_by_length: bool = True
    evals_per_epoch: int = Field(4, ge=1, le=1000)
    seed: int = 42
    # each process's share of a batch goes through the model in this many passes (memory); the
    # gradient, and so the result, stays that of the whole batch
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    # how several processes (torchrun / accelerate launch) share training: "ddp" keeps the whole model
    # in each; "fsdp" shards its parameters, for models that do not fit one device
    parallel: Literal["ddp", "fsdp"] = "ddp"

    @model_validator(mode="after")
    def _passes_fit_batch(self) -> TrainSettings:
        if self.gradient_accumulation_steps > self.batch_size:
            raise ValueError("gradient_accumulation_steps cannot exceed batch_size (a pass with no rows)")
        return self


class FinetuneSpec(TrainSettings):
    pass


class RecoverySpec(TrainSettings):
    """Distillation from the fine-tuned teacher after pruning."""

    train_rows: int | None = Field(None, ge=1)  # a seeded sample of the train split; all when absent
    temperature: PositiveFloat = 2.0
    distill_weight: float = Field(0.5, ge=0, le=1)  # weight of the KL term; 1 - this for cross-entropy


class PruneSpec(_Strict):
    heads_fraction: float = Field(0.0, ge=0, lt=1)
    ffn_fraction: float = Field(0.0, ge=0, lt=1)
    target_macs_fraction: float | None = Field(None, gt=0, lt=1)
    min_heads_per_layer: int = Field(1, ge=1)
    uniform_ffn: bool = True
    per_layer: bool = False
    importance: Literal["gradient", "magnitude"] = "gradient"
    importance_rows: int = Field(512, ge=1)
    macs_batch: int = Field(1, ge=1)
    macs_sequence: int = Field(128, ge=1, le=512)
    max_accuracy_drop: float | None = None
    recovery: RecoverySpec | None = RecoverySpec()

    @model_validator(mode="after")
    def _removes_something(self) -> PruneSpec:
        fractions = self.heads_fraction or self.ffn_fraction
        if self.target_macs_fraction is not None and fractions:
            raise ValueError("give target_macs_fraction or heads_fraction/ffn_fraction, not both")
        if self.target_macs_fraction is None and not fractions:
            raise ValueError(
                "this prune config removes nothing: set heads_fraction, ffn_fraction or target_macs_fraction"
            )
        return self


class ExportSpec(_Strict):
    opset: int = Field(18, ge=17, le=23)
    parity_rows: int = Field(256, ge=1)
    max_abs_logit_diff: PositiveFloat = 1e-3
    min_label_agreement: float = Field(0.99, ge=0, le=1)


class QuantizeSpec(_Strict):
    mode: Literal["dynamic", "static"] = "dynamic"
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    calibration_rows: int = Field(256, ge=1)  # from the dev split, never the test split
    per_channel: bool = False
    op_types: list[str] | None = None  # ONNX op types to quantize; all that ONNX Runtime can when absent
    isa: Isa = "auto"  # for INT8 targets that do not name their own
    fuse: bool = True
    # points against the FP32 ONNX model on the dev rows; a miss starts the FP32 fallback
    max_accuracy_drop: float | None = None
    max_trials: int = Field(8, ge=1, le=32)  # quantize attempts, the fully INT8 one included
    # batch x sequence shapes at which the INT8 model must answer like the FP32 one
    check_shapes: list[Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*x[1-9][0-9]*$")]] = [
        "1x16",
        "1x128",
        "8x64",
        "32x256",
    ]
    check_rows: int | None = Field(None, ge=1)  # test rows per shape; all of them when absent
    min_label_agreement: float = Field(0.99, ge=0, le=1)


ShapeText = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*x[1-9][0-9]*$")]


class EngineInt8Spec(_Strict):
    """TensorRT-style INT8 (symmetric Q/DQ, per-channel weights), with the quantize stage's fallback."""

    calibration: Literal["minmax", "entropy", "percentile"] = "percentile"
    calibration_rows: int = Field(256, ge=1)  # dev rows, never test rows
    max_accuracy_drop: float | None = 0.5  # points vs the FP32 ONNX model on dev; misses start the fallback
    max_trials: int = Field(8, ge=1, le=32)
    check_shapes: list[ShapeText] = ["1x16", "1x128", "8x64"]
    check_rows: int | None = Field(None, ge=1)
    # symmetric int8 activations (what TensorRT reads) change more labels than ONNX Runtime's
    # uint8 dynamic path: MiniLM/SST-2 kept 97.8-99.2% of dev labels with 2-16 layers in FP32
    # while its accuracy stayed within 0.6 pt; accuracy is the target's budget, this a sanity floor
    min_label_agreement: float = Field(0.98, ge=0, le=1)


class EngineSpec(_Strict):
    """Precision-carrying ONNX for TensorRT targets, and the engines where a GPU is present."""

    fp16_keep_fp32: list[str] = ["LayerNormalization", "Softmax"]  # op types that overflow in FP16
    int8: EngineInt8Spec = EngineInt8Spec()
    workspace_mb: int = Field(2048, ge=64, le=1 << 20)


class ProfileSpec(_Strict):
    """The batch x sequence range an engine is built for (a TensorRT optimization profile)."""

    min: ShapeText = "1x16"
    opt: ShapeText = "1x128"
    max: ShapeText = "32x256"

    @model_validator(mode="after")
    def _ordered(self) -> ProfileSpec:
        shapes = [tuple(int(x) for x in s.split("x")) for s in (self.min, self.opt, self.max)]
        if not all(a <= b <= c for a, b, c in zip(*shapes, strict=True)):
            raise ValueError("need min <= opt <= max in both batch and sequence")
        return self


class ReleaseMatrixSpec(_Strict):
    """Every ONNX artifact at every batch x sequence it may be served at, against its FP32 reference."""

    enabled: bool = True
    batches: list[Annotated[int, Field(ge=1, le=512)]] = Field([1, 8, 32], min_length=1)
    sequences: list[Annotated[int, Field(ge=1, le=512)]] = Field([16, 64, 128, 256], min_length=1)
    rows: int = Field(64, ge=1, le=100_000)  # test rows compared per shape (repeated if fewer)
    # a gross-error check (a broken axis garbles most rows); fine accuracy is the gates' job, on
    # every test row. At 64 rows, 0.99 would fail an INT8 model over one changed label.
    min_label_agreement: float = Field(0.95, ge=0, le=1)
    latency_repeats: int = Field(3, ge=1, le=1000)


class EvaluationSpec(_Strict):
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    baseline: float | None = Field(None, ge=0, le=1)
    batch_size: int = Field(64, ge=1)
    latency_warmup: int = Field(5, ge=0)
    latency_repeats: int = Field(20, ge=1)
    bootstrap_resamples: int = Field(2000, ge=100, le=100_000)
    seed: int = 0
    release_matrix: ReleaseMatrixSpec = ReleaseMatrixSpec()


class RegressionSpec(_Strict):
    """Compare every target with the same target of an earlier bundle; a breach fails the run."""

    baseline: str = Field("latest", min_length=1)  # "latest" (this recipe's previous bundle) or a path
    max_metric_drop: float = Field(0.5, ge=0)  # points below the baseline target's metric
    max_latency_increase: float | None = Field(None, ge=0)  # fraction: 0.5 allows 1.5x the old latency
    max_size_increase: float | None = Field(0.05, ge=0)  # fraction of the old size


class Target(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    runtime: Runtime
    precision: Precision
    max_accuracy_drop: float = Field(description="absolute points, e.g. 1.0 = one point")
    max_latency_ms: PositiveFloat | None = None
    latency_batch: int = Field(1, ge=1, le=4096)
    latency_sequence: int = Field(128, ge=1, le=512)
    max_size_mb: PositiveFloat | None = None
    max_disagreement: float | None = Field(None, ge=0, le=1)  # share of rows whose label changed vs FP32
    decision: Literal["point", "upper"] = "point"
    confidence: float = Field(0.95, ge=0.5, le=0.999)
    required: bool = True
    isa: Isa | None = None  # onnxruntime/int8 only: build this target's INT8 for that CPU family
    # tensorrt targets: the engine's shape range, and whether a CPU proxy may stand in for an engine
    # that could not be built here (no CUDA device); without it such a target fails the run
    profile: ProfileSpec = ProfileSpec()
    allow_proxy: bool = False
    # test hook: seeded Gaussian noise (this fraction of each weight tensor's std) added to the
    # target's weights before evaluation, to check that regression checks catch a changed model
    perturb_weights: float | None = Field(None, gt=0, le=10)


class OutputSpec(_Strict):
    dir: PathField = Path("artifacts")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)


class Recipe(_Strict):
    model: ModelSpec
    data: DataSpec
    finetune: FinetuneSpec | None = None
    prune: PruneSpec | None = None
    export: ExportSpec | None = None
    engine: EngineSpec | None = None
    quantize: QuantizeSpec | None = None
    evaluation: EvaluationSpec = EvaluationSpec()
    targets: list[Target] = Field(min_length=1)
    regression: RegressionSpec | None = None
    output: OutputSpec = OutputSpec()

    @model_validator(mode="after")
    def _unique_target_names(self) -> Recipe:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate target names: {', '.join(dupes)}")
        return self


class LoadedRecipe(BaseModel):
    """A validated recipe plus where it came from; paths inside `recipe` are absolute."""

    model_config = ConfigDict(frozen=True)
    path: Path
    name: str
    recipe: Recipe
    text: str = ""  # the recipe file as written, kept in the bundle so the run can be reproduced

    def resolved(self) -> dict:
        return json.loads(self.recipe.model_dump_json())

    def sha256(self) -> str:
        """Of what the recipe says, not where it lies: file paths count by name only (their
        content is hashed separately), so a moved checkout keeps the same recipe hash."""
        resolved = self.resolved()
        for key in ("train", "dev", "test"):
            resolved["data"][key] = Path(resolved["data"][key]).name
        if resolved["model"].get("path"):
            resolved["model"]["path"] = Path(resolved["model"]["path"]).name
        return json_sha256(resolved)


MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of settings; anything near this is not one


def load_recipe(
    path: Path | str, *, text: str | None = None, base: Path | None = None, allow_outside: bool = False
) -> LoadedRecipe:
    """Parse, validate and resolve a recipe; raise one CompressError listing every problem.

    `text` and `base` replay a recipe stored in a bundle: its text, with relative paths resolved
    against `base` (the folder the original recipe lay in) instead of `path`'s folder.
    Paths in a recipe must stay inside its folder tree (no absolute paths, no `..`) unless
    `allow_outside`: a recipe copied from elsewhere cannot read or write where it likes.
    """
    path = Path(path)
    if text is None:
        if not path.is_file():
            raise CompressError(f"{path}: recipe file not found")
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise CompressError(f"{path}: {size:,} bytes; a recipe may be at most {MAX_RECIPE_BYTES:,}")
        text = path.read_bytes().decode("utf-8", errors="replace")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CompressError(f"{path}: not valid TOML: {exc}") from None
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise CompressError(f"{path}: " + "; ".join(_describe(e, text) for e in exc.errors())) from None
    outside = [] if allow_outside else _paths_outside(recipe, text)
    if outside:
        raise CompressError(f"{path}: " + "; ".join(outside))
    recipe = _resolve_paths(recipe, (base or path.parent).resolve())
    problems = _check_stages_cover_targets(recipe, text) + _check_files(recipe, text)
    if not problems and recipe.prune is not None:
        problems = _check_prune(recipe, text)
    if not problems:
        from compress.data import check_data_files  # heavy-ish: only once the schema is sound

        problems = [f"{_where(('data', key), text)}: {msg}" for key, msg in check_data_files(recipe.data)]
    if problems:
        raise CompressError(f"{path}: " + "; ".join(problems))
    name = recipe.output.name or path.stem
    return LoadedRecipe(path=path.resolve(), name=name, recipe=recipe, text=text)


def _paths_outside(recipe: Recipe, text: str) -> list[str]:
    """Every path key that is absolute or climbs out with `..`, named with its line."""
    paths = {("data", k): getattr(recipe.data, k) for k in ("train", "dev", "test")}
    paths[("model", "path")] = recipe.model.path
    paths[("output", "dir")] = recipe.output.dir
    if recipe.regression is not None and recipe.regression.baseline != "latest":
        paths[("regression", "baseline")] = Path(recipe.regression.baseline)
    return [
        f"{_where(loc, text)}: {p} leads outside the recipe's folder (absolute or '..'); "
        "give it on the command line with --allow-outside if that is intended"
        for loc, p in paths.items()
        if p is not None and (p.is_absolute() or ".." in p.parts)
    ]


def _resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    data = recipe.data.model_copy(
        update={k: absolute(getattr(recipe.data, k)) for k in ("train", "dev", "test")}
    )
    model = recipe.model
    if model.path is not None:
        model = model.model_copy(update={"path": absolute(model.path)})
    regression = recipe.regression
    if regression is not None and regression.baseline != "latest":
        regression = regression.model_copy(update={"baseline": str(absolute(Path(regression.baseline)))})
    return recipe.model_copy(update={"data": data, "model": model, "regression": regression})


def _check_files(recipe: Recipe, text: str) -> list[str]:
    problems = []
    for key in ("train", "dev", "test"):
        p = getattr(recipe.data, key)
        if not p.is_file():
            problems.append(f"{_where(('data', key), text)}: file not found: {p}")
    if recipe.model.path is not None:
        p = recipe.model.path
        if not (p / "config.json").is_file():
            problems.append(
                f"{_where(('model', 'path'), text)}: not a Hugging Face checkpoint folder "
                f"(no config.json): {p}"
            )
        elif not any(p.glob("*.safetensors")):
            problems.append(
                f"{_where(('model', 'path'), text)}: no *.safetensors weights in {p} "
                "(pickled .bin checkpoints are not loaded: convert them to safetensors)"
            )
        else:
            problems += [f"{_where(('model', 'path'), text)}: {bad}" for bad in _unreadable_safetensors(p)]
    regression = recipe.regression
    if regression is not None and regression.baseline != "latest":
        p = Path(regression.baseline)
        if not (p.is_file() or (p / "manifest.json").is_file()):
            problems.append(
                f"{_where(('regression', 'baseline'), text)}: no bundle manifest at {p} "
                '(give a bundle folder, its manifest.json, or "latest")'
            )
    return problems


def _model_shape(spec: ModelSpec) -> tuple[int, int]:
    """(layers, heads per layer) of the starting model, read from its config without loading it."""
    if spec.tiny is not None:
        return spec.tiny.num_hidden_layers, spec.tiny.num_attention_heads
    from compress.modeling import packaged_model_dir

    folder = spec.path if spec.path is not None else packaged_model_dir(spec.packaged)
    config = json.loads((folder / "config.json").read_text())
    return config["num_hidden_layers"], config["num_attention_heads"]


def _check_prune(recipe: Recipe, text: str) -> list[str]:
    """Refuse plans that would empty a layer of heads, before any work is done."""
    spec = recipe.prune
    n_layers, n_heads = _model_shape(recipe.model)
    where = _where(("prune", "heads_fraction"), text)
    if spec.min_heads_per_layer > n_heads:
        return [
            f"{_where(('prune', 'min_heads_per_layer'), text)}: the model has only {n_heads} heads per layer"
        ]
    n_remove = round(spec.heads_fraction * n_layers * n_heads)
    if spec.per_layer:
        per_layer = -(-n_remove // n_layers)  # the most any one layer gives up
        if n_heads - per_layer < spec.min_heads_per_layer:
            return [
                f"{where}: removing {per_layer} of {n_heads} heads in a layer leaves fewer than "
                f"min_heads_per_layer = {spec.min_heads_per_layer}"
            ]
    elif n_remove > n_layers * (n_heads - spec.min_heads_per_layer):
        return [
            f"{where}: removing {n_remove} of {n_layers * n_heads} heads cannot keep "
            f"min_heads_per_layer = {spec.min_heads_per_layer} in every layer"
        ]
    if spec.heads_fraction and n_remove == 0:
        return [
            f"{where}: {spec.heads_fraction} of {n_layers * n_heads} heads rounds to none: nothing removed"
        ]
    return []


def _unreadable_safetensors(folder: Path) -> list[str]:
    """Weight files whose header cannot be read or whose tensors run past the end of the file."""
    from safetensors import SafetensorError, safe_open

    bad = []
    for f in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(f, framework="numpy") as handle:
                handle.keys()
        except (SafetensorError, OSError) as exc:
            bad.append(f"corrupt weights file {f}: {exc}")
    return bad


# Which (runtime, precision) pairs each stage can produce. One table, read by validation and runner.
PRODUCERS: dict[tuple[str, str], str] = {
    ("torch", "fp32"): "finetune",
    ("onnxruntime", "fp32"): "export",
    ("onnxruntime", "int8"): "quantize",
    ("tensorrt", "fp16"): "engine",
    ("tensorrt", "int8"): "engine",
}


def _check_stages_cover_targets(recipe: Recipe, text: str) -> list[str]:
    problems = []
    for i, target in enumerate(recipe.targets):
        stage = PRODUCERS.get((target.runtime, target.precision))
        where = _where(("targets", i, "runtime"), text)
        if stage is None:
            problems.append(
                f"{where}: target '{target.name}' asks for {target.runtime}/{target.precision}, "
                "which no stage of this version produces (available: "
                + ", ".join(f"{r}/{p}" for r, p in PRODUCERS)
                + ")"
            )
        elif stage in ("export", "quantize", "engine") and recipe.export is None:
            problems.append(f"{where}: target '{target.name}' needs an ONNX model: add an [export] table")
        elif stage == "quantize" and recipe.quantize is None:
            problems.append(f"{where}: target '{target.name}' needs INT8: add a [quantize] table")
        elif stage == "engine" and recipe.engine is None:
            problems.append(f"{where}: target '{target.name}' needs TensorRT: add an [engine] table")
        if target.isa is not None and stage != "quantize":
            problems.append(
                f"{_where(('targets', i, 'isa'), text)}: target '{target.name}': isa applies only to "
                "onnxruntime/int8 targets"
            )
    return problems


def _describe(error: dict, text: str) -> str:
    loc = tuple(error["loc"])
    # pydantic appends the validator's input type to union locations; keep the user's key path
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "union"))))
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{_where(loc, text)}: unknown key"
    if kind == "missing":
        return f"{_where(loc, text)}: required key is missing"
    msg = error["msg"]
    if kind == "literal_error":
        msg = msg.replace("Input should be", "must be one of")
    elif error.get("input") is not None and kind.endswith(("_type", "_parsing")):
        msg = f"{msg} (got {json.dumps(error['input'], default=str)[:60]})"
    return f"{_where(loc, text)}: {msg}"


def _where(loc: tuple, text: str) -> str:
    """Format a key path like `data.label_column` and add 'line N' when it can be found in the text."""
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    line = _line_of(loc, text)
    return f"{key or '(top level)'} (line {line})" if line else (key or "(top level)")


def _line_of(loc: tuple, text: str) -> int | None:
    lines = text.splitlines()
    if not loc:
        return None
    table, rest = loc[0], loc[1:]
    start = None
    if rest and isinstance(rest[0], int):  # array of tables: the n-th [[table]] header
        headers = [i for i, ln in enumerate(lines) if re.match(rf"\s*\[\[\s*{table}\s*\]\]", ln)]
        if rest[0] < len(headers):
            start = headers[rest[0]]
        rest = rest[1:]
    else:
        for i, ln in enumerate(lines):
            if re.match(rf"\s*\[\s*{re.escape(str(table))}\s*\]", ln):
                start = i
                break
    if start is None:
        for i, ln in enumerate(lines):  # a top-level key
            if re.match(rf"\s*{re.escape(str(table))}\s*=", ln):
                return i + 1
        return None
    if not rest or not isinstance(rest[0], str):
        return start + 1
    for i in range(start + 1, len(lines)):
        if re.match(r"\s*\[", lines[i]):
            break
        if re.match(rf"\s*{re.escape(rest[0])}\s*=", lines[i]):
            return i + 1
    return start + 1
