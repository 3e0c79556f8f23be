"""INT8 for ONNX Runtime: fuse the FP32 graph first, then quantize with settings chosen per ISA.

The only module importing onnxruntime.quantization (the engine stage reuses `build_int8` for
TensorRT-style Q/DQ) and onnxruntime.transformers' optimizer. Measured on a
2-core Zen 4 (AVX-512 VNNI) with MiniLM-L6 / SST-2 (see benchmarks/results/quantize.json):
- Fusion (Attention, EmbedLayerNormalization, and for a moment SkipLayerNormalization and BiasGelu)
  before quantizing lets ONNX Runtime run QAttention instead of six separate quantized MatMuls per
  layer. The fused graph lacks shape information for some outputs, so the quantizer is told the
  default tensor type (`DefaultTensorType = FLOAT`), or it stops with "Unable to find data type for
  weight_name". Fusion alone ran at 0.93-1.08x the speed of plain `quantize_dynamic` on the unfused
  graph: SkipLayerNormalization and BiasGelu are slow kernels on the CPU provider, so
  `compress.kernels` splits them again (with a `Sum` residual ONNX Runtime cannot re-fuse). Fused,
  split and quantized: 10.0 ms at 1x128 and 113 ms at 32x64 against plain's 12.3 and 122 ms and
  FP32's 24.0 and 262 ms (one interleaved run, 2026-11-24; the benchmarks give the current figures).
- Per-channel weight scales: 98.97% of the 872 test labels as FP32, against 98.05% per-tensor, at
  the same speed.
- Dynamic quantization computes activation ranges over the whole batch, padding included: the same
  row can get a different label in another batch. The shape matrix below checks that at 1x16 ... 32x256.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from compress import fallback
from compress.data import pad_batch, tokenize
from compress.environment import cpu_info
from compress.errors import StageFailed
from compress.kernels import split_slow_fusions
from compress.modeling import load_tokenizer
from compress.runtimes import RUNTIMES
from compress.shapes import matrix_problems, shape_matrix
from compress.stages import NewArtifact, StageContext, StageResult
from compress.stages.export import dynamic_axes_problems


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
        # TensorRT reads explicit Q/DQ and wants zero points of 0 everywhere and weight scales per
        # output channel (axis 1 of a MatMul's [in, out] weight)
        "tensorrt": {
            "activation": QuantType.QInt8,
            "weight": QuantType.QInt8,
            "reduce_range": False,
            "extra": {
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
            },
        },
    }[isa]


def fuse(src: Path, dst: Path) -> dict:
    """ONNX Runtime's transformer fusions; head count and hidden size are detected from the graph,
    which also copes with pruned models whose layers have different head counts."""
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
    fused = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    split = split_slow_fusions(model.model)
    model.save_model_to_file(str(dst))
    return {**fused, **{f"{op} split again": n for op, n in split.items()}}


class _Calibration:
    """Dev rows, padded to max_length so every calibration batch has one shape."""

    def __init__(self, ids: list[list[int]], pad_id: int, max_length: int, input_names: set[str]):
        self.batches = []
        # full batches only: histogram calibration (entropy, percentile) stacks every batch's
        # tensors and fails on a shorter last one
        ids = ids[: len(ids) // 16 * 16 or len(ids)]
        for start in range(0, len(ids), 16):
            batch = pad_batch(ids[start : start + 16], pad_id, width=max_length)
            self.batches.append({k: v for k, v in batch.items() if k in input_names})
        self._it = iter(self.batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self.batches)


def quantizable_layers(model_path: Path, spec) -> dict[str, str]:
    """Name -> op type of the nodes with weights that the quantizer would turn INT8: the fallback's
    candidates."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry

    types = set(spec.op_types or (IntegerOpsRegistry if spec.mode == "dynamic" else QDQRegistry))
    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return {n.name: n.op_type for n in graph.node if n.name and n.op_type in types and weights & set(n.input)}


def quantize(
    src: Path,
    dst: Path,
    spec,
    settings: dict,
    calibration: _Calibration | None,
    *,
    fp32_layers: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
    calibration_cache: Path | None = None,
) -> None:
    """Quantize `src` into `dst`, leaving `fp32_layers` in FP32 (or quantizing `only` those named).
    Static mode calibrates once and keeps the ranges in `calibration_cache` for later trials."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_dynamic, quantize_static

    common = dict(
        per_channel=spec.per_channel,
        reduce_range=settings["reduce_range"],
        weight_type=settings["weight"],
        op_types_to_quantize=spec.op_types,
        nodes_to_exclude=list(fp32_layers),
        nodes_to_quantize=list(only) if only is not None else None,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, **settings.get("extra", {})},
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
    if calibration is not None:
        calibration.rewind()
    quantize_static(
        str(src),
        str(dst),
        calibration,
        quant_format=QuantFormat.QDQ,
        activation_type=settings["activation"],
        calibrate_method=method,
        calibration_cache_path=calibration_cache,
        **common,
    )


# Table lookups: in FP32 they cost size (MiniLM's word embeddings: 47 MB against 12 MB), not time
LOOKUPS = {"EmbedLayerNormalization", "Gather"}


def _logits(folder: Path, batches: list[dict]) -> np.ndarray:
    predict = RUNTIMES["onnxruntime"](folder)
    return np.concatenate([predict(b) for b in batches])


def fallback_agreement(min_label_agreement: float) -> float:
    """What the fallback asks of the dev rows: half the changed labels the test check allows.
    Measured: full INT8 kept 99.22% of 256 dev labels at every shape, then 98.44% of 256 test
    rows at 1x16; changed labels are rare events, so a search that just meets the limit on one
    sample misses it on the next about half the time."""
    return 1 - (1 - min_label_agreement) / 2


def _memoized(predict):
    """The FP32 model's answers are the same in every trial: compute each batch once."""
    seen: dict[bytes, np.ndarray] = {}

    def cached(batch: dict) -> np.ndarray:
        ids = batch["input_ids"]
        key = ids.tobytes() + bytes(str(ids.shape), "ascii") + batch["attention_mask"].tobytes()
        if key not in seen:
            seen[key] = predict(batch)
        return seen[key]

    return cached


def _sensitivity(ctx, layers, attempt, reference: np.ndarray) -> list[tuple[str, float]]:
    """Each layer quantized alone: mean squared logit error against FP32 on the calibration rows.
    Most harmful first: those are the layers to keep in FP32."""
    scores = []
    with ctx.progress.bar("fallback: layer sensitivity", len(layers)) as advance:
        for layer in layers:
            scores.append((layer, float(np.mean((attempt(only=(layer,)) - reference) ** 2))))
            advance()
    return sorted(scores, key=lambda s: -s[1])


def isa_builds(targets, default_isa: str) -> dict[str, list[str]]:
    """Resolved ISA -> the onnxruntime/int8 targets served by that build (one build per ISA)."""
    builds: dict[str, list[str]] = {}
    for t in targets:
        if (t.runtime, t.precision) == ("onnxruntime", "int8"):
            builds.setdefault(resolve_isa(t.isa or default_isa), []).append(t.name)
    return builds or {resolve_isa(default_isa): []}


def reads(recipe) -> dict:
    """Part of this stage's cache key: the builds its INT8 targets ask for (resolved on this CPU)."""
    return {"builds": isa_builds(recipe.targets, recipe.quantize.isa)}


@dataclass
class _Inputs:
    """What every ISA's build shares: the graph to quantize, the dev rows and FP32's answers."""

    source: Path
    graph: Path
    fusions: dict
    layers: dict[str, str]  # name -> op type
    tokenizer: object
    dev_batches: list[dict]
    sample: list[dict]  # the sensitivity rows
    fp32_dev: np.ndarray
    fp32_sample: np.ndarray
    fp32_at_shapes: object
    calibration: _Calibration | None


def _quiet_quantizer() -> None:
    """ONNX Runtime's quantizer logs advice on the root logger; the stage reports for itself."""
    for name in ("onnxruntime", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run(ctx: StageContext) -> StageResult:
    spec = ctx.spec
    _quiet_quantizer()
    builds = isa_builds(ctx.recipe.targets, spec.isa)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = _prepare(ctx)
        made, metrics, failures = [], {"builds": {}}, []
        for isa, served in builds.items():
            folder = "onnx" if len(builds) == 1 else f"onnx-{isa}"
            build_metrics, build_failures = _build(ctx, inputs, isa, ctx.out_dir / folder)
            build_metrics["targets"] = served
            metrics["builds"][isa] = build_metrics
            failures += [f"{isa}: {f}" if len(builds) > 1 else f for f in build_failures]
            made.append(NewArtifact("onnx", "onnxruntime", "int8", folder, serves=tuple(served)))
    inputs.graph.unlink()
    (ctx.out_dir / "calibration.json").unlink(missing_ok=True)
    native = resolve_isa("auto")
    metrics["notes"] = [
        note
        for isa, m in metrics["builds"].items()
        for note in m["notes"]
        + ([f"{isa} build: latency measured on this {native} machine"] if isa != native else [])
    ]
    return StageResult(artifacts=made, metrics=metrics, failure="; ".join(failures) or None)


def build_int8(ctx: StageContext, isa: str, out: Path) -> tuple[dict, list[str]]:
    """One INT8 model of `ctx.inputs["onnx"]` for `isa` in `out`, with the fallback and the shape
    check, as configured by `ctx.spec` (a QuantizeSpec): what the engine stage uses for TensorRT."""
    _quiet_quantizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inputs = _prepare(ctx)
        try:
            return _build(ctx, inputs, isa, out)
        finally:
            inputs.graph.unlink(missing_ok=True)
            (ctx.out_dir / "calibration.json").unlink(missing_ok=True)


def _prepare(ctx: StageContext) -> _Inputs:
    spec = ctx.spec
    source = ctx.inputs["onnx"].path
    tokenizer = load_tokenizer(source)
    pad_id = tokenizer.pad_token_id or 0
    max_length = ctx.recipe.data.max_length
    dev = ctx.splits["dev"]  # calibration and fallback decisions: never the test split
    dev_ids = tokenize(tokenizer, dev.texts, max_length)
    dev_batches = [pad_batch(dev_ids[i : i + 64], pad_id) for i in range(0, len(dev_ids), 64)]
    sample = dev_batches[: max(1, spec.calibration_rows // 64)]
    graph = ctx.out_dir / "fused.onnx"
    with ctx.progress.bar(f"quantize: {'fuse, ' if spec.fuse else ''}FP32 answers on dev", 2) as advance:
        if spec.fuse:
            fusions = fuse(source / "model.onnx", graph)
        else:
            fusions = {}
            shutil.copy2(source / "model.onnx", graph)
        advance()
        calibration = None
        if spec.mode == "static":
            names = {i.name for i in onnx.load(str(graph), load_external_data=False).graph.input}
            calibration = _Calibration(dev_ids[: spec.calibration_rows], pad_id, max_length, names)
        inputs = _Inputs(
            source=source,
            graph=graph,
            fusions=fusions,
            layers=quantizable_layers(graph, spec),
            tokenizer=tokenizer,
            dev_batches=dev_batches,
            sample=sample,
            fp32_dev=_logits(source, dev_batches),
            fp32_sample=_logits(source, sample),
            fp32_at_shapes=_memoized(RUNTIMES["onnxruntime"](source)),
            calibration=calibration,
        )
        advance()
    return inputs


def _build(ctx: StageContext, inputs: _Inputs, isa: str, out: Path) -> tuple[dict, list[str]]:
    """One ISA's INT8 model in `out`: quantize, fall back layer by layer if needed, check shapes."""
    spec = ctx.spec
    settings = quant_settings(isa)
    dev = ctx.splits["dev"]
    dev_labels = np.array(dev.labels)
    layers = inputs.layers
    scratch = ctx.out_dir / f"scratch-{isa}"  # trial models; not part of the artifact
    for folder in (out, scratch):
        folder.mkdir(parents=True)
        for f in inputs.source.iterdir():  # config and tokenizer travel with the graph
            if f.suffix != ".onnx":
                shutil.copy2(f, folder / f.name)
    ctx.progress.info(f"  quantize {spec.mode} INT8 for {isa}")

    def attempt(fp32_layers=(), only=None, batches=inputs.sample) -> np.ndarray:
        quantize(
            inputs.graph,
            scratch / "model.onnx",
            spec,
            settings,
            inputs.calibration,
            fp32_layers=fp32_layers,
            only=only,
            calibration_cache=ctx.out_dir / "calibration.json",
        )
        return _logits(scratch, batches)

    sensitivity: list[tuple[str, float]] = []

    def rank() -> list[str]:
        sensitivity.extend(_sensitivity(ctx, list(layers), attempt, inputs.fp32_sample))
        return fallback.order(sensitivity, free={n for n, op in layers.items() if op in LOOKUPS})

    def evaluate(fp32_layers: tuple[str, ...]) -> tuple[float, float]:
        """Dev accuracy, and the lowest label agreement with FP32 over the dev batches and every
        checked shape: the held-out shape check on test rows then rarely finds a surprise."""
        labels = attempt(fp32_layers=fp32_layers, batches=inputs.dev_batches).argmax(-1)
        accuracy = float(np.mean(labels == dev_labels))
        at_shapes = shape_matrix(
            inputs.fp32_at_shapes,
            RUNTIMES["onnxruntime"](scratch),
            inputs.tokenizer,
            dev.texts,
            spec.check_shapes,
            len(dev.texts),
        )
        agreement = min(
            [float(np.mean(labels == inputs.fp32_dev.argmax(-1)))]
            + [r["label_agreement"] or 0.0 for r in at_shapes.values()]
        )
        ctx.progress.info(
            f"  trial: {len(fp32_layers)} of {len(layers)} layers in FP32 -> dev accuracy "
            f"{accuracy:.4f} ({(fp32_accuracy - accuracy) * 100:+.2f} pt), "
            f"at least {agreement:.2%} labels as FP32 at every shape"
        )
        return accuracy, agreement

    fp32_accuracy = float(np.mean(inputs.fp32_dev.argmax(-1) == dev_labels))
    outcome = fallback.search(
        reference_accuracy=fp32_accuracy,
        budget=spec.max_accuracy_drop,
        min_agreement=fallback_agreement(spec.min_label_agreement),
        max_trials=spec.max_trials,
        candidates=len(layers),
        rank=rank,
        evaluate=evaluate,
    )
    # the chosen trial (passing, or the best effort) again: quantization is deterministic
    quantize(
        inputs.graph,
        out / "model.onnx",
        spec,
        settings,
        inputs.calibration,
        fp32_layers=outcome.chosen.fp32_layers,
        calibration_cache=ctx.out_dir / "calibration.json",
    )
    shutil.rmtree(scratch)

    problems = dynamic_axes_problems(out / "model.onnx")
    if problems:
        raise StageFailed("quantized graph lost its dynamic axes: " + "; ".join(problems))
    with ctx.progress.bar(f"quantize: {isa} shape matrix on test rows", len(spec.check_shapes)) as advance:
        matrix = shape_matrix(
            RUNTIMES["onnxruntime"](inputs.source),
            RUNTIMES["onnxruntime"](out),
            inputs.tokenizer,
            ctx.splits["test"].texts,
            spec.check_shapes,
            spec.check_rows,
            advance,
        )
    scores = dict(sensitivity)
    ranks = {name: i + 1 for i, (name, _) in enumerate(sensitivity)}
    metrics = {
        "mode": spec.mode,
        "isa": isa,
        "activation_type": settings["activation"].name if spec.mode == "static" else "QUInt8 (dynamic)",
        "weight_type": settings["weight"].name,
        "reduce_range": settings["reduce_range"],
        "fusions": inputs.fusions,
        "quantizable_layers": len(layers),
        "fallback": {
            "budget": spec.max_accuracy_drop,
            "min_label_agreement": fallback_agreement(spec.min_label_agreement),
            "limits": _limits(spec),
            "judged_on": f"{len(dev.labels)} dev rows against the FP32 ONNX model",
            "fp32_dev_accuracy": fp32_accuracy,
            "met": outcome.met,
            "trials": [t.to_dict() for t in outcome.trials],
        },
        "fp32_layers": [
            {
                "layer": name,
                "why": f"rank {ranks[name]} of {len(layers)} by logit error when quantized alone"
                + ("; a lookup, tried first: in FP32 it costs size, not time" * (layers[name] in LOOKUPS)),
                "logit_mse_alone": scores[name],
            }
            for name in outcome.chosen.fp32_layers
        ],
        "shape_matrix": matrix,
    }
    metrics["notes"] = _notes(metrics, outcome, len(layers))
    (out / "quantization.json").write_text(json.dumps(metrics, indent=1))
    failures = [f"shape matrix vs FP32 ONNX: {p}" for p in matrix_problems(matrix, spec.min_label_agreement)]
    if not outcome.met:
        chosen = outcome.chosen
        failures.insert(
            0,
            f"no trial met {_limits(spec)} on the dev rows in {len(outcome.trials)} trials; best "
            f"effort: drop {chosen.drop:+.2f} pt, {chosen.agreement:.2%} labels as FP32, with "
            f"{len(chosen.fp32_layers)} of {len(layers)} layers in FP32",
        )
    return metrics, failures


def _notes(metrics: dict, outcome, candidates: int) -> list[str]:
    """The lines the report shows under this stage."""
    chosen = outcome.chosen
    fallback = (
        f"{'met' if outcome.met else 'MISSED'} {metrics['fallback']['limits']} on dev after "
        f"{len(outcome.trials)} trial(s): drop {chosen.drop:+.2f} pt, {chosen.agreement:.2%} labels "
        f"as FP32, with "
        f"{len(chosen.fp32_layers)} of {candidates} layers in FP32"
        + (f" ({', '.join(chosen.fp32_layers)})" if chosen.fp32_layers else "")
    )
    shapes = ", ".join(
        f"{shape} ERROR"
        if r["error"] is not None
        else f"{shape} {r['label_agreement']:.1%}"
        if r["label_agreement"] is not None
        else f"{shape} no rows"
        for shape, r in metrics["shape_matrix"].items()
    )
    return [
        f"{metrics['mode']} INT8 for {metrics['isa']}; {fallback}",
        f"label agreement with FP32 ONNX by batch x sequence: {shapes}",
    ]


def _limits(spec) -> str:
    limits = [f"label agreement >= {fallback_agreement(spec.min_label_agreement):.2%} at every shape"]
    if spec.max_accuracy_drop is not None:
        limits.insert(0, f"quantize.max_accuracy_drop {spec.max_accuracy_drop:.2f} pt")
    return " and ".join(limits)
