"""ONNX Runtime's quantizer and transformer optimizer: the only module that imports them.

Measured on a 2-core Zen 4 (AVX-512 VNNI) with MiniLM-L6 / SST-2 (see benchmarks/results/quantize.json):
- Fusion (Attention, EmbedLayerNormalization, and for a moment SkipLayerNormalization and BiasGelu)
  before quantizing lets ONNX Runtime run QAttention instead of six separate quantized MatMuls per
  layer. The fused graph lacks shape information for some outputs, so the quantizer is told the
  default tensor type (`DefaultTensorType = FLOAT`), or it stops with "Unable to find data type for
  weight_name". Fusion alone ran at 0.93-1.08x the speed of plain `quantize_dynamic` on the unfused
  graph: SkipLayerNormalization and BiasGelu are slow kernels on the CPU provider, so
  `compress.quantization.kernels` splits them again (with a `Sum` residual ONNX Runtime cannot
  re-fuse). Fused, split and quantized: 10.0 ms at 1x128 and 113 ms at 32x64 against plain's 12.3
  and 122 ms and FP32's 24.0 and 262 ms (one interleaved run, 2026-11-24; the benchmarks give the
  current figures).
- Attention stays QAttention (the Attention fusion, quantized). Scratch study on this project's 2-core
  Xeon (AMX), 2026-11-30, dynamic INT8 per channel, each graph paired against plain `quantize_dynamic`
  per tensor (Optimum's preset) at 1x128 / 32x64. Pruned MiniLM: QAttention 1.35x / 1.25x;
  MultiHeadAttention with three separately quantized Q/K/V MatMuls 1.24x / 1.12x; the GELU
  approximation (FastGelu) 1.33x / 1.22x, no gain, so exact Gelu stays. Unpruned MiniLM: QAttention
  1.33x / 1.17x; no attention fusion (FP32 attention core in plain ops) 1.07x / 1.10x. Per op at 32x64
  (`python -m benchmarks.onnx_profile`): QAttention and DynamicQuantizeMatMul ~70% of kernel time,
  Gelu ~10%, the split residual Sum + LayerNormalization ~15% (Optimum's SkipLayerNormalization took
  11.6 ms where Sum + LayerNormalization took 9.2 ms, unpruned, in `make bench`).
- Per-channel weight scales: 98.97% of the 872 test labels as FP32, against 98.05% per-tensor, at
  the same speed.
- Dynamic mode quantizes activations per batch to uint8 and weights to int8: on VNNI this is the
  u8s8 dot-product path. Without VNNI (plain AVX2) u8 x s8 products go through vpmaddubsw, whose
  16-bit intermediate saturates, so weights use 7 bits there (`reduce_range`).
- Static QDQ with int8 activations left half of the MatMuls in FP32 behind DequantizeLinear and ran
  slower than FP32 (issue #5's table), so static mode uses uint8 activations on x86 and int8 on ARM,
  and pads calibration batches to max_length (entropy/percentile calibration fail on ragged batches).
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import onnx

from compress.data.batches import pad_batch
from compress.quantization.kernels import split_slow_fusions

# Table lookups: in FP32 they cost size (MiniLM's word embeddings: 47 MB against 12 MB), not time
LOOKUPS = {"EmbedLayerNormalization", "Gather"}

# The fallback's cheaper form than FP32 for a MatMul: 8-bit weights in blocks of 128 along K
# (MatMulNBits), activations quantized per row and block at run time (accuracy level 4, MLAS's int8
# path). What it costs and buys is measured by `python -m benchmarks.fallback_forms`; the block size
# and level were chosen in a scratch study on this project's Xeon (AMX) with ONNX Runtime 1.32 (one
# MatMul + bias, MiniLM's four shapes at 1x128 and 32x64, median of 30): level 4 / block 128 ran at
# 0.86-1.08x the FP32 MatMul's time where level 0 (dequantize, then FP32) took 1.08-2.4x and level 4 /
# block 32 1.12-1.36x, with a largest error 0.65-0.9x that of the dynamic INT8 MatMul's on random rows.
WEIGHT_ONLY = "weight_only"  # the form's name in the fallback's trials
WEIGHT_ONLY_OPS = {"MatMul"}
WEIGHT_ONLY_SETTINGS = {"bits": 8, "block_size": 128, "is_symmetric": True, "accuracy_level": 4}


@dataclass(frozen=True)
class QuantScheme:
    """How a graph is quantized: the shared settings type of every INT8 build."""

    isa: str  # avx512_vnni | avx2 | arm64 | tensorrt
    mode: Literal["dynamic", "static"]
    per_channel: bool
    op_types: tuple[str, ...] | None  # ONNX op types to quantize; all ONNX Runtime can when None
    activation: str  # QuantType name: QUInt8 | QInt8 (static mode; dynamic is always uint8)
    weight: str
    reduce_range: bool
    extra: dict = field(default_factory=dict)  # further quantizer extra_options
    # where a layer must leave INT8, the forms tried before FP32, cheapest first (fallback.FORMS)
    fallback_forms: tuple[str, ...] = ()


def scheme_for(
    isa: str,
    *,
    mode: Literal["dynamic", "static"],
    per_channel: bool,
    op_types: list[str] | None,
    weight_only_fallback: bool = False,
) -> QuantScheme:
    """Activation type, weight type and reduce_range for an ISA (why: see the module docstring).
    `weight_only_fallback` lets the fallback try 8-bit weight-only MatMuls before FP32 ones (an ONNX
    Runtime contrib op: never for TensorRT, which reads only Q/DQ)."""
    ops = tuple(op_types) if op_types is not None else None
    if isa == "tensorrt":
        # TensorRT reads explicit Q/DQ and wants zero points of 0 everywhere and weight scales per
        # output channel (axis 1 of a MatMul's [in, out] weight)
        extra = {
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
        }
        return QuantScheme(isa, mode, per_channel, ops, "QInt8", "QInt8", False, extra)
    activation = {"avx512_vnni": "QUInt8", "avx2": "QUInt8", "arm64": "QInt8"}[isa]
    forms = (WEIGHT_ONLY,) if weight_only_fallback else ()
    return QuantScheme(isa, mode, per_channel, ops, activation, "QInt8", isa == "avx2", fallback_forms=forms)


def split_by_form(layers: tuple[str, ...], form: str, ops: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """How the layers out of INT8 run in a trial of `form`: "weight_only" (8-bit weights) for the
    MatMuls where the form is weight-only, "fp32" for the rest (fused attention, lookups)."""
    weight_only = tuple(n for n in layers if form == WEIGHT_ONLY and ops[n] in WEIGHT_ONLY_OPS)
    return {WEIGHT_ONLY: weight_only, "fp32": tuple(n for n in layers if n not in weight_only)}


def quiet() -> None:
    """ONNX Runtime's quantizer logs advice on the root logger; the stages report for themselves."""
    for name in ("onnxruntime", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fuse(src: Path, dst: Path) -> dict:
    """ONNX Runtime's transformer fusions; head count and hidden size are detected from the graph,
    which also copes with pruned models whose layers have different head counts."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
    fused = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    split = split_slow_fusions(model.model)
    model.save_model_to_file(str(dst))
    return {**fused, **{f"{op} split again": n for op, n in split.items()}}


class Calibration:
    """Dev rows, padded to max_length so every calibration batch has one shape (ONNX Runtime's
    CalibrationDataReader protocol)."""

    def __init__(self, ids: list[list[int]], pad_id: int, max_length: int, input_names: set[str]):
        self.batches = []
        # full batches only: histogram calibration (entropy, percentile) stacks every batch's
        # tensors and fails on a shorter last one
        ids = ids[: len(ids) // 16 * 16 or len(ids)]
        for start in range(0, len(ids), 16):
            batch = pad_batch(ids[start : start + 16], pad_id, width=max_length)
            self.batches.append({k: v for k, v in batch.items() if k in input_names})
        self._it = iter(self.batches)

    def get_next(self) -> dict | None:
        """The next batch, or None at the end."""
        return next(self._it, None)

    def rewind(self) -> None:
        """Start over (every static trial calibrates from the first batch)."""
        self._it = iter(self.batches)


def graph_inputs(model_path: Path) -> set[str]:
    """The names of a graph's inputs."""
    return {i.name for i in onnx.load(str(model_path), load_external_data=False).graph.input}


def quantizable_layers(model_path: Path, scheme: QuantScheme) -> dict[str, str]:
    """Name -> op type of the nodes with weights that the quantizer would turn INT8: the fallback's
    candidates."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry

    types = set(scheme.op_types or (IntegerOpsRegistry if scheme.mode == "dynamic" else QDQRegistry))
    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return {n.name: n.op_type for n in graph.node if n.name and n.op_type in types and weights & set(n.input)}


def quantize(
    src: Path,
    dst: Path,
    scheme: QuantScheme,
    *,
    method: str = "minmax",
    calibration: Calibration | None = None,
    fp32_layers: tuple[str, ...] = (),
    weight_only_layers: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
    calibration_cache: Path | None = None,
) -> None:
    """Quantize `src` into `dst`, leaving `fp32_layers` in FP32 and `weight_only_layers` (MatMuls)
    with 8-bit weights only (or quantizing `only` those named). Static mode calibrates once with
    `method` and keeps the ranges in `calibration_cache` for later trials."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT, **scheme.extra}
    common = dict(
        per_channel=scheme.per_channel,
        reduce_range=scheme.reduce_range,
        weight_type=QuantType[scheme.weight],
        op_types_to_quantize=list(scheme.op_types) if scheme.op_types is not None else None,
        nodes_to_exclude=[*fp32_layers, *weight_only_layers],
        nodes_to_quantize=list(only) if only is not None else None,
    )
    if scheme.mode == "dynamic":
        quantize_dynamic(str(src), str(dst), extra_options=extra, **common)
    else:
        _quantize_static(src, dst, scheme, extra, common, method, calibration, calibration_cache)
    weights_only(dst, weight_only_layers)


def weights_only(path: Path, layers: tuple[str, ...]) -> None:
    """Rewrite, in place, the named FP32 MatMuls as 8-bit weight-only MatMulNBits (`WEIGHT_ONLY_SETTINGS`)."""
    if not layers:
        return  # the quantizer reads an empty list as "every MatMul"
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(path))
    missing = set(layers) - {n.name for n in model.graph.node if n.op_type in WEIGHT_ONLY_OPS}
    if missing:
        raise ValueError(f"not FP32 MatMuls, cannot take 8-bit weights only: {sorted(missing)}")
    others = [n.name for n in model.graph.node if n.name not in layers]
    quantizer = MatMulNBitsQuantizer(
        model, nodes_to_include=list(layers), nodes_to_exclude=others, **WEIGHT_ONLY_SETTINGS
    )
    quantizer.process()
    onnx.save(quantizer.model.model, str(path))


def _quantize_static(
    src: Path,
    dst: Path,
    scheme: QuantScheme,
    extra: dict,
    common: dict,
    method: str,
    calibration: Calibration | None,
    calibration_cache: Path | None,
) -> None:
    """QDQ with activation ranges calibrated on `calibration` (see `quantize`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    # Biases stay FP32: int32 bias scales need both inputs' scales, which the fused graph's pooler
    # Gather does not have ("Unable to get valid quantization scale ... when quantizing bias").
    extra["QuantizeBias"] = False
    if calibration is not None:
        calibration.rewind()
    # its calibrators print their progress to stdout, which `compress run` keeps for the verdict line
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(
            str(src),
            str(dst),
            calibration,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType[scheme.activation],
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[method],
            calibration_cache_path=calibration_cache,
            extra_options=extra,
            **common,
        )
