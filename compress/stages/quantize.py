"""INT8 for ONNX Runtime: fuse the FP32 graph first, then quantize with settings chosen per ISA.

The only module importing onnxruntime.quantization and onnxruntime.transformers. Measured on a
2-core Zen 4 (AVX-512 VNNI) with MiniLM-L6 / SST-2 (see benchmarks/results/quantize.json):
- Fusion (Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization) before quantizing
  lets ONNX Runtime run QAttention instead of six separate quantized MatMuls per layer. The fused graph
  lacks shape information for some outputs, so the quantizer is told the default tensor type
  (`DefaultTensorType = FLOAT`), or it stops with "Unable to find data type for weight_name".
- Dynamic mode quantizes activations per batch to uint8 and weights to int8: on VNNI this is the
  u8s8 dot-product path. Without VNNI (plain AVX2) u8 x s8 products go through vpmaddubsw, whose
  16-bit intermediate saturates, so weights use 7 bits there (`reduce_range`).
- Static QDQ with int8 activations left half of the MatMuls in FP32 behind DequantizeLinear and ran
  slower than FP32 (issue #5's table), so static mode uses uint8 activations on x86 and int8 on ARM,
  and pads calibration batches to max_length (entropy/percentile calibration fail on ragged batches).
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx

from compress.data import pad_batch, tokenize
from compress.environment import cpu_info
from compress.modeling import load_tokenizer
from compress.runtimes import RUNTIMES
from compress.stages import NewArtifact, StageContext, StageResult
from compress.stages.export import dynamic_axes_problems, parity


def resolve_isa(isa: str) -> str:
    """The ISA family whose INT8 kernels ONNX Runtime will use on this (or the named) CPU."""
    if isa != "auto":
        return isa
    info = cpu_info()
    if info["machine"] in ("aarch64", "arm64"):
        return "arm64"
    flags = set(info["isa"])
    return "avx512_vnni" if flags & {"avx512_vnni", "avx_vnni"} else "avx2"


def quant_settings(isa: str) -> dict:
    """Activation type, weight type and reduce_range for an ISA (why: see the module docstring)."""
    from onnxruntime.quantization import QuantType

    return {
        "avx512_vnni": {"activation": QuantType.QUInt8, "weight": QuantType.QInt8, "reduce_range": False},
        "avx2": {"activation": QuantType.QUInt8, "weight": QuantType.QInt8, "reduce_range": True},
        "arm64": {"activation": QuantType.QInt8, "weight": QuantType.QInt8, "reduce_range": False},
    }[isa]


def fuse(src: Path, dst: Path) -> dict:
    """ONNX Runtime's transformer fusions; head count and hidden size are detected from the graph,
    which also copes with pruned models whose layers have different head counts."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
    model.save_model_to_file(str(dst))
    return {k: v for k, v in model.get_fused_operator_statistics().items() if v}


class _Calibration:
    """Dev rows, padded to max_length so every calibration batch has one shape."""

    def __init__(self, ids: list[list[int]], pad_id: int, max_length: int, input_names: set[str]):
        self.batches = []
        for start in range(0, len(ids), 16):
            rows = [r + [pad_id] * (max_length - len(r)) for r in ids[start : start + 16]]
            batch = pad_batch(rows, pad_id)
            batch["attention_mask"] = (batch["input_ids"] != pad_id).astype(np.int64)
            self.batches.append({k: v for k, v in batch.items() if k in input_names})
        self._it = iter(self.batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self.batches)


def quantize(src: Path, dst: Path, spec, settings: dict, calibration: _Calibration | None) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_dynamic, quantize_static

    common = dict(
        per_channel=spec.per_channel,
        reduce_range=settings["reduce_range"],
        weight_type=settings["weight"],
        op_types_to_quantize=spec.op_types,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    if spec.mode == "dynamic":
        quantize_dynamic(str(src), str(dst), **common)
        return
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[spec.calibration]
    # Biases stay FP32: int32 bias scales need both inputs' scales, which the fused graph's pooler
    # Gather does not have ("Unable to get valid quantization scale ... when quantizing bias").
    common["extra_options"] = {**common["extra_options"], "QuantizeBias": False}
    quantize_static(
        str(src),
        str(dst),
        calibration,
        quant_format=QuantFormat.QDQ,
        activation_type=settings["activation"],
        calibrate_method=method,
        **common,
    )


def run(ctx: StageContext) -> StageResult:
    spec = ctx.spec
    source = ctx.inputs["onnx"].path
    out = ctx.out_dir / "onnx"
    out.mkdir(parents=True)
    for f in source.iterdir():  # config and tokenizer travel with the graph
        if f.suffix != ".onnx":
            shutil.copy2(f, out / f.name)
    isa = resolve_isa(spec.isa)
    settings = quant_settings(isa)
    for name in ("onnxruntime", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    fused = ctx.out_dir / "fused.onnx"
    with ctx.progress.bar(f"quantize ({spec.mode}, {isa})", 3) as advance, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fusions = fuse(source / "model.onnx", fused) if spec.fuse else {}
        graph = fused if spec.fuse else source / "model.onnx"
        advance()
        calibration = None
        tokenizer = load_tokenizer(source)
        max_length = ctx.recipe.data.max_length
        if spec.mode == "static":
            dev = ctx.splits["dev"]  # never the test split
            ids = tokenize(tokenizer, dev.texts[: spec.calibration_rows], max_length)
            names = {i.name for i in onnx.load(str(graph), load_external_data=False).graph.input}
            calibration = _Calibration(ids, tokenizer.pad_token_id or 0, max_length, names)
        advance()
        quantize(graph, out / "model.onnx", spec, settings, calibration)
        advance()
    fused.unlink(missing_ok=True)
    problems = dynamic_axes_problems(out / "model.onnx")
    test = ctx.splits["test"]
    ids = tokenize(tokenizer, test.texts[:256], max_length)
    batches = [pad_batch(ids[i : i + 16], tokenizer.pad_token_id or 0) for i in range(0, len(ids), 16)]
    agreement = parity(RUNTIMES["onnxruntime"](source), RUNTIMES["onnxruntime"](out), batches)
    metrics = {
        "mode": spec.mode,
        "isa": isa,
        "activation_type": settings["activation"].name if spec.mode == "static" else "QUInt8 (dynamic)",
        "weight_type": settings["weight"].name,
        "reduce_range": settings["reduce_range"],
        "fusions": fusions,
        "dynamic_axes_problems": problems,
        "agreement_with_fp32_onnx": agreement,
    }
    (out / "quantization.json").write_text(json.dumps(metrics, indent=1))
    if problems:
        from compress.errors import StageFailed

        raise StageFailed("quantized graph lost its dynamic axes: " + "; ".join(problems), metrics)
    return StageResult(artifacts=[NewArtifact("onnx", "onnxruntime", "int8", "onnx")], metrics=metrics)
