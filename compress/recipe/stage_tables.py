"""The tables that switch a stage on ([finetune], [prune], [export], [quantize], [engine], [torch_int8])
and the training settings [finetune] and [prune.recovery] share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from compress.recipe.fields import Calibration, Isa, PositiveFloat, Shape, ShapeText, Strict


class TrainSettings(Strict):
    """How a model is trained: shared by [finetune] and [prune.recovery]."""

    epochs: int = Field(1, ge=1, le=100)
    """Passes over the training rows."""
    batch_size: int = Field(32, ge=1, le=4096)
    """Rows per optimizer step, however many processes train (each takes its share)."""
    learning_rate: PositiveFloat = 1e-4
    """AdamW learning rate, after a linear warm-up, decaying linearly to 0."""
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    """Share of the steps spent warming up the learning rate."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay."""
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Gradient-norm clipping; none when absent."""
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    """auto: bf16 autocast on CPUs with native bf16, else FP32; on CUDA bf16 where supported, else fp16 with
    a GradScaler. Or bf16, fp16, off."""
    bucket_by_length: bool = True
    """Batches of rows of similar length, padded per batch (faster, same rows per epoch)."""
    evals_per_epoch: int = Field(4, ge=1, le=1000)
    """Dev evaluations per epoch; the best checkpoint is kept."""
    seed: int = 42
    """Seed of shuffling, dropout and initialisation."""
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    """Each process's share of a batch goes through the model in this many passes (less memory); the
    gradient, and so the result, stays that of the whole batch."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """How several processes (torchrun / accelerate launch) share training: ddp keeps the whole model in
    each; fsdp shards parameters, gradients and optimizer state, for models that do not fit one device.
    Ignored on one process."""

    @model_validator(mode="after")
    def _passes_fit_batch(self) -> TrainSettings:
        if self.gradient_accumulation_steps > self.batch_size:
            raise ValueError("gradient_accumulation_steps cannot exceed batch_size (a pass with no rows)")
        return self


class FinetuneSpec(TrainSettings):
    """`[finetune]`: mixed-precision fine-tuning of the starting checkpoint."""


class RecoverySpec(TrainSettings):
    """`[prune.recovery]`: distillation from the fine-tuned teacher after pruning."""

    train_rows: int | None = Field(None, ge=1)
    """A seeded sample of the train split; all when absent."""
    temperature: PositiveFloat = 2.0
    """Distillation temperature T."""
    distill_weight: float = Field(0.5, ge=0, le=1)
    """Weight of the T^2 KL(teacher||student) term; 1 - this weighs cross-entropy."""


class PruneSpec(Strict):
    """`[prune]`: structured removal of attention heads and FFN neurons."""

    heads_fraction: float = Field(0.0, ge=0, lt=1)
    """Fraction of all attention heads to remove."""
    ffn_fraction: float = Field(0.0, ge=0, lt=1)
    """Fraction of FFN intermediate neurons to remove."""
    target_macs_fraction: float | None = Field(None, gt=0, lt=1)
    """Instead of the two fractions: the encoder-MAC reduction to reach."""
    min_heads_per_layer: int = Field(1, ge=1)
    """Never fewer heads than this in a layer."""
    uniform_ffn: bool = True
    """Every layer keeps the same FFN width (plain from_pretrained reloads it); false ranks neurons
    globally."""
    per_layer: bool = False
    """Remove the same number of heads from every layer instead of ranking globally."""
    importance: Literal["gradient", "magnitude"] = "gradient"
    """gradient: head-mask gradients and first-order Taylor for FFN neurons, on dev rows; magnitude: weight
    norms."""
    importance_rows: int = Field(512, ge=1)
    """Dev rows used for scoring."""
    macs_batch: int = Field(1, ge=1)
    """Batch size MACs are counted at."""
    macs_sequence: int = Field(128, ge=1, le=512)
    """Sequence length MACs are counted at."""
    max_accuracy_drop: float | None = None
    """The stage's own budget: points against the checkpoint it pruned, judged on the test rows."""
    recovery: RecoverySpec | None = RecoverySpec()
    """Distillation from the fine-tuned teacher after pruning; omit the table for none."""

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


class ExportSpec(Strict):
    """`[export]`: the ONNX graph and the parity it must keep with the checkpoint."""

    opset: int = Field(18, ge=17, le=23)
    """ONNX opset; batch and sequence axes are dynamic."""
    parity_rows: int = Field(256, ge=1)
    """Test rows compared between PyTorch and ONNX Runtime."""
    max_abs_logit_diff: PositiveFloat = 1e-3
    """Parity fails the stage above this."""
    min_label_agreement: float = Field(0.99, ge=0, le=1)
    """... or below this share of unchanged labels."""


class Int8SearchSpec(Strict):
    """What an INT8 build shares wherever it is made ([quantize], [engine.int8]): calibration, the
    accuracy-aware FP32 fallback and the shape check against the FP32 graph."""

    calibration: Calibration = "minmax"
    """Activation calibration on dev rows: minmax, entropy or percentile."""
    calibration_rows: int = Field(256, ge=1)
    """Dev rows used for calibration (never test rows)."""
    max_accuracy_drop: float | None = None
    """The stage's budget, in points against the FP32 ONNX model: the fallback aims at it on the dev rows;
    the stage is then judged on it on the test rows."""
    fallback_agreement: float | None = Field(None, ge=0, le=1)
    """Also make the fallback keep layers FP32 until this share of dev rows keeps FP32's label at every check
    shape. Off by default: the fallback buys accuracy; agreement bought with FP32 layers costs speed (MiniLM:
    6 of 25 layers kept FP32 for 99.5% agreement, ~1 ms per FFN MatMul at 1x128) and no accuracy."""
    max_trials: int = Field(8, ge=1, le=32)
    """Quantize attempts, the fully INT8 one included."""
    check_shapes: list[ShapeText] = [Shape(1, 16), Shape(1, 128), Shape(8, 64), Shape(32, 256)]
    """Batch x sequence shapes at which the INT8 model must answer like the FP32 one."""
    check_rows: int | None = Field(256, ge=1)
    """Test rows per check shape (all when absent). The shape check looks for a graph that breaks at some
    shape, not for small accuracy changes (the targets' gates judge every test row): 256 rows catch a
    shape that changes 5% of labels (13 of 256: 95% Wilson interval 3.0-8.5%, wholly above a 1%
    allowance) at a fraction of the cost of 7,600 rows at 32x256."""
    min_label_agreement: float = Field(0.99, ge=0, le=1)
    """Share of rows that must keep the FP32 model's label at every check shape; a shape fails when the
    95% interval of its changed share lies wholly above 1 - this."""


class QuantizeSpec(Int8SearchSpec):
    """`[quantize]`: INT8 for ONNX Runtime on CPUs, one build per ISA its targets name."""

    mode: Literal["dynamic", "static"] = "dynamic"
    """dynamic: int8 weights, activations quantized per batch; static: QDQ with calibrated activations."""
    per_channel: bool = False
    """Per-channel weight scales."""
    op_types: list[str] | None = None
    """ONNX op types to quantize; all that ONNX Runtime can when absent."""
    isa: Isa = "auto"
    """For INT8 targets without their own isa: avx512_vnni, avx2, arm64, or auto (this CPU)."""
    fuse: bool = True
    """ONNX Runtime's transformer fusions before quantizing."""
    weight_only_fallback: bool = True
    """Where the fallback takes MatMuls out of INT8, one more trial with their weights in 8 bits
    (MatMulNBits), kept over FP32 if the budget still holds: about FP32's speed at a quarter of its weights'
    size (`python -m benchmarks.fallback_forms`)."""


class EngineInt8Spec(Int8SearchSpec):
    """`[engine.int8]`: TensorRT-style INT8 (symmetric Q/DQ, per-channel weights)."""

    calibration: Calibration = "percentile"
    """Activation calibration on dev rows: minmax, entropy or percentile."""
    max_accuracy_drop: float | None = 0.5
    """The stage's budget, in points against the FP32 ONNX graph (dev rows aim the fallback; test rows
    judge)."""
    check_shapes: list[ShapeText] = [Shape(1, 16), Shape(1, 128), Shape(8, 64)]
    """Batch x sequence shapes at which the INT8 graph must answer like the FP32 one."""
    min_label_agreement: float = Field(0.98, ge=0, le=1)
    """A sanity floor: symmetric int8 activations (what TensorRT reads) change more labels than ONNX
    Runtime's dynamic path (MiniLM/SST-2 kept 97.8-99.2% of dev labels with 2-16 layers in FP32 while
    accuracy stayed within 0.6 pt)."""
    fallback_agreement: float | None = Field(0.98, ge=0, le=1)
    """On by default here, unlike [quantize]: static activation scales are calibrated at one length and
    break at others. Measured on pruned MiniLM: aimed at accuracy alone the fallback kept 1 layer FP32,
    within budget on dev at 64 tokens, and 18 of 256 test labels changed at 1x16."""


class EngineSpec(Strict):
    """`[engine]`: precision-carrying ONNX for TensorRT targets, and the engines where a GPU is present."""

    fp16_keep_fp32: list[str] = ["LayerNormalization", "Softmax"]
    """Op types left FP32 (behind Casts) in the FP16 graph: they overflow in FP16."""
    int8: EngineInt8Spec = EngineInt8Spec()
    """The INT8 engine's calibration, fallback and shape check."""
    workspace_mb: int = Field(2048, ge=64, le=1 << 20)
    """TensorRT builder workspace."""


class TorchInt8Spec(Strict):
    """`[torch_int8]`: static INT8 for PyTorch through Neural Compressor's PT2E path, autotuned on dev rows
    over every combination of the list-valued options, saved as a torch.export program (.pt2)."""

    calibration_rows: int = Field(256, ge=1)
    """Dev rows used for calibration (never test rows)."""
    eval_rows: int | None = Field(None, ge=1)
    """Dev rows each trial is scored on; all of them when absent."""
    act_sym: list[bool] = [False, True]
    """Activation scales tried: asymmetric (uint8), symmetric, or both."""
    act_algo: list[Literal["minmax", "kl"]] = ["minmax", "kl"]
    """Activation calibration algorithms tried."""
    w_granularity: list[Literal["per_channel", "per_tensor"]] = ["per_channel"]
    """Weight scale granularities tried."""
    modes: list[Literal["static", "dynamic"]] = ["static"]
    """INT8 kinds tried, in this order: static (activation scales calibrated on dev rows, every combination of
    the options above) and dynamic (activation scales computed per batch at run time; the weight
    granularities above)."""
    max_accuracy_drop: float = Field(1.0, ge=0)
    """Points the INT8 model may fall below the checkpoint it read: autotune's tolerable loss on the dev rows,
    and the stage's own budget on the test rows."""
    max_trials: int = Field(4, ge=1, le=32)
    """Configs tried at most, in Neural Compressor's order; it stops at the first within the budget."""
    aot_inductor: bool = True
    """Also compile the chosen program ahead of time with AOTInductor (freezing on) into model.aoti.pt2, which
    the torch runtime serves where it loads: a shared library for this CPU, fast without a compiler at load
    time. Building it needs a C++ compiler; without one the stage keeps the portable program and says why."""
    max_autotune: bool = True
    """With aot_inductor, one package to try: Inductor's own C++ INT8 GEMM kernels (AMX or AVX-512 VNNI),
    timed against oneDNN's for every linear layer, the faster kept."""
    fuse_post_ops: bool = True
    """With aot_inductor, another: oneDNN's INT8 linears with each one's GELU and residual add fused in.
    The stage compiles each package asked for, drops any whose dev labels leave the program's, times the
    rest at the torch/int8 targets' latency shapes and serves the fastest (compress.quantization.inductor
    says why one package is never both; benchmarks/torch_int8_compile.py measures each)."""

    @model_validator(mode="after")
    def _something_to_try(self) -> TorchInt8Spec:
        for name in ("act_sym", "act_algo", "w_granularity", "modes"):
            if not getattr(self, name):
                raise ValueError(f"{name} needs at least one value to try")
        return self
