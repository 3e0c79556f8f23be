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

from compress import fallback
from compress.data import pad_batch, tokenize
from compress.environment import cpu_info
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
            batch = pad_batch(ids[start : start + 16], pad_id, width=max_length)
            self.batches.append({k: v for k, v in batch.items() if k in input_names})
        self._it = iter(self.batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self.batches)


def quantizable_layers(model_path: Path, spec) -> list[str]:
    """Names of the nodes with weights that the quantizer would turn INT8: the fallback's candidates."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry

    types = set(spec.op_types or (IntegerOpsRegistry if spec.mode == "dynamic" else QDQRegistry))
    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.name and n.op_type in types and weights & set(n.input)]


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


def _logits(folder: Path, batches: list[dict]) -> np.ndarray:
    predict = RUNTIMES["onnxruntime"](folder)
    return np.concatenate([predict(b) for b in batches])


def _sensitivity(ctx, layers, attempt, reference: np.ndarray) -> list[tuple[str, float]]:
    """Each layer quantized alone: mean squared logit error against FP32 on the calibration rows.
    Most harmful first: those are the layers to keep in FP32."""
    scores = []
    with ctx.progress.bar("fallback: layer sensitivity", len(layers)) as advance:
        for layer in layers:
            scores.append((layer, float(np.mean((attempt(only=(layer,)) - reference) ** 2))))
            advance()
    return sorted(scores, key=lambda s: -s[1])


def run(ctx: StageContext) -> StageResult:
    spec = ctx.spec
    source = ctx.inputs["onnx"].path
    out = ctx.out_dir / "onnx"
    scratch = ctx.out_dir / "scratch"  # trial models; not part of the artifact
    out.mkdir(parents=True)
    scratch.mkdir()
    for f in source.iterdir():  # config and tokenizer travel with the graph
        if f.suffix != ".onnx":
            shutil.copy2(f, out / f.name)
            shutil.copy2(f, scratch / f.name)
    isa = resolve_isa(spec.isa)
    settings = quant_settings(isa)
    for name in ("onnxruntime", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    tokenizer = load_tokenizer(source)
    pad_id = tokenizer.pad_token_id or 0
    max_length = ctx.recipe.data.max_length
    dev = ctx.splits["dev"]  # calibration and fallback decisions: never the test split
    dev_ids = tokenize(tokenizer, dev.texts, max_length)
    dev_batches = [pad_batch(dev_ids[i : i + 64], pad_id) for i in range(0, len(dev_ids), 64)]
    sample = dev_batches[: max(1, spec.calibration_rows // 64)]

    graph = ctx.out_dir / "fused.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ctx.progress.bar(f"quantize ({spec.mode}, {isa})", 2) as advance:
            if spec.fuse:
                fusions = fuse(source / "model.onnx", graph)
            else:
                fusions = {}
                shutil.copy2(source / "model.onnx", graph)
            advance()
            calibration = None
            if spec.mode == "static":
                names = {i.name for i in onnx.load(str(graph), load_external_data=False).graph.input}
                ids = dev_ids[: spec.calibration_rows]
                calibration = _Calibration(ids, pad_id, max_length, names)
            fp32_dev = _logits(source, dev_batches)
            fp32_sample = _logits(source, sample)
            advance()

        def attempt(fp32_layers=(), only=None, batches=sample) -> np.ndarray:
            quantize(
                graph,
                scratch / "model.onnx",
                spec,
                settings,
                calibration,
                fp32_layers=fp32_layers,
                only=only,
                calibration_cache=ctx.out_dir / "calibration.json",
            )
            return _logits(scratch, batches)

        layers = quantizable_layers(graph, spec)
        sensitivity: list[tuple[str, float]] = []
        best: dict = {}

        def rank() -> list[str]:
            sensitivity.extend(_sensitivity(ctx, layers, attempt, fp32_sample))
            return [name for name, _ in sensitivity]

        def evaluate(fp32_layers: tuple[str, ...]) -> tuple[float, float]:
            logits = attempt(fp32_layers=fp32_layers, batches=dev_batches)
            labels = logits.argmax(-1)
            accuracy = float(np.mean(labels == dev_labels))
            agreement = float(np.mean(labels == fp32_dev.argmax(-1)))
            ctx.progress.info(
                f"  trial: {len(fp32_layers)} of {len(layers)} layers in FP32 -> dev accuracy "
                f"{accuracy:.4f} ({(fp32_accuracy - accuracy) * 100:+.2f} pt), "
                f"{agreement:.2%} labels as FP32"
            )
            score = (fp32_accuracy - accuracy, -agreement)
            if not best or score < best["score"]:  # keep the best effort for when nothing passes
                shutil.copy2(scratch / "model.onnx", out / "model.onnx")
                best["score"] = score
            return accuracy, agreement

        dev_labels = np.array(dev.labels)
        fp32_accuracy = float(np.mean(fp32_dev.argmax(-1) == dev_labels))
        outcome = fallback.search(
            reference_accuracy=fp32_accuracy,
            budget=spec.max_accuracy_drop,
            min_agreement=spec.min_label_agreement,
            max_trials=spec.max_trials,
            candidates=len(layers),
            rank=rank,
            evaluate=evaluate,
        )
        if outcome.met:  # the passing trial is the last one run: its model is in scratch
            shutil.copy2(scratch / "model.onnx", out / "model.onnx")
    shutil.rmtree(scratch)
    graph.unlink()
    (ctx.out_dir / "calibration.json").unlink(missing_ok=True)

    problems = dynamic_axes_problems(out / "model.onnx")
    if problems:
        from compress.errors import StageFailed

        raise StageFailed("quantized graph lost its dynamic axes: " + "; ".join(problems))
    with ctx.progress.bar("quantize: shape matrix", 1) as advance:
        matrix = shape_matrix(
            RUNTIMES["onnxruntime"](source),
            RUNTIMES["onnxruntime"](out),
            tokenizer,
            ctx.splits["test"].texts,
            spec.check_shapes,
            spec.check_rows,
        )
        advance()
    scores = dict(sensitivity)
    ranks = {name: i + 1 for i, (name, _) in enumerate(sensitivity)}
    metrics = {
        "mode": spec.mode,
        "isa": isa,
        "activation_type": settings["activation"].name if spec.mode == "static" else "QUInt8 (dynamic)",
        "weight_type": settings["weight"].name,
        "reduce_range": settings["reduce_range"],
        "fusions": fusions,
        "quantizable_layers": len(layers),
        "fallback": {
            "budget": spec.max_accuracy_drop,
            "min_label_agreement": spec.min_label_agreement,
            "limits": _limits(spec),
            "judged_on": f"{len(dev.labels)} dev rows against the FP32 ONNX model",
            "fp32_dev_accuracy": fp32_accuracy,
            "met": outcome.met,
            "trials": [t.to_dict() for t in outcome.trials],
        },
        "fp32_layers": [
            {
                "layer": name,
                "why": f"rank {ranks[name]} of {len(layers)} by logit error when quantized alone",
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
    return StageResult(
        artifacts=[NewArtifact("onnx", "onnxruntime", "int8", "onnx")],
        metrics=metrics,
        failure="; ".join(failures) or None,
    )


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
        f"{shape} {r['label_agreement']:.1%}" if r["error"] is None else f"{shape} ERROR"
        for shape, r in metrics["shape_matrix"].items()
    )
    return [
        f"{metrics['mode']} INT8 for {metrics['isa']}; {fallback}",
        f"label agreement with FP32 ONNX by batch x sequence: {shapes}",
    ]


def _limits(spec) -> str:
    limits = [f"label agreement >= {spec.min_label_agreement:.2%}"]
    if spec.max_accuracy_drop is not None:
        limits.insert(0, f"quantize.max_accuracy_drop {spec.max_accuracy_drop:.2f} pt")
    return " and ".join(limits)
