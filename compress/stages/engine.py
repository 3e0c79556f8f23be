"""TensorRT targets: precision-carrying ONNX for each precision asked for, and the engine where a
CUDA device and the tensorrt package exist.

- FP16: the FP32 graph converted with its inputs and outputs kept FP32 and the op types in
  `fp16_keep_fp32` (LayerNormalization and Softmax by default: their reductions overflow in
  FP16 on BERT-class models) left FP32 behind Cast nodes.
- INT8: symmetric Q/DQ (zero points 0) with per-output-channel weight scales on the linear
  layers, calibrated on dev rows, with the quantize stage's accuracy-aware FP32 fallback.
Without a GPU the graph is still built and checked, and the artifact is marked as a proxy: it is
evaluated in ONNX Runtime on the CPU, and its target says why no engine was built.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from compress.core.artifact import NewArtifact
from compress.core.stage import StageContext, StageResult
from compress.data.batches import pad_batch, tokenize
from compress.models.loading import load_tokenizer
from compress.quantization.build import build as build_int8
from compress.quantization.build import preparing
from compress.quantization.fp16 import convert_fp16
from compress.quantization.onnxrt import scheme_for
from compress.recipe.schema import EngineSpec, Recipe, Shape, Target
from compress.runtimes import RUNTIMES
from compress.runtimes import tensorrt_engine as tensorrt


def _targets(recipe: Recipe) -> dict[str, list[Target]]:
    """precision -> the tensorrt targets asking for it."""
    out: dict[str, list[Target]] = {}
    for t in recipe.targets:
        if t.runtime == "tensorrt":
            out.setdefault(t.precision, []).append(t)
    return out


def profile_of(targets: Sequence[Target]) -> dict[str, str]:
    """One engine per precision, covering every target's range: smallest min, largest max."""
    low = Shape(min(t.profile.min.batch for t in targets), min(t.profile.min.sequence for t in targets))
    high = Shape(max(t.profile.max.batch for t in targets), max(t.profile.max.sequence for t in targets))
    return {"min": str(low), "opt": str(targets[0].profile.opt), "max": str(high)}


def reads(recipe: Recipe) -> dict:
    """Part of the cache key: which precisions and shape ranges the TensorRT targets ask for, and
    what an engine would be built for here (TensorRT version, GPU, compute capability; or none)."""
    targets = {p: [profile_of(ts), [t.name for t in ts]] for p, ts in sorted(_targets(recipe).items())}
    return {"targets": targets, "build_target": tensorrt.build_target()}


def qdq_summary(path: Path) -> dict:
    """What TensorRT will read from the Q/DQ graph: zero points, and weight scale layout."""
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    nonzero, per_channel, per_tensor = 0, 0, 0
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if len(node.input) > 2 and node.input[2] in inits and np.any(inits[node.input[2]] != 0):
            nonzero += 1
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:  # a weight
            if inits[node.input[1]].size > 1:
                per_channel += 1
            else:
                per_tensor += 1
    return {
        "nonzero_zero_points": nonzero,
        "per_channel_weights": per_channel,
        "per_tensor_weights": per_tensor,
    }


def _agreement(src: Path, folder: Path, ctx: StageContext[EngineSpec], rows: int = 256) -> dict:
    """The converted graph against the FP32 ONNX model on dev rows, in ONNX Runtime on the CPU."""
    tokenizer = load_tokenizer(src)
    ids = tokenize(tokenizer, ctx.splits.dev.texts[:rows], ctx.recipe.data.max_length)
    batches = [pad_batch(ids[i : i + 32], tokenizer.pad_token_id or 0) for i in range(0, len(ids), 32)]
    ref = np.concatenate([RUNTIMES["onnxruntime"](src)(b) for b in batches])
    new = np.concatenate([RUNTIMES["onnxruntime"](folder)(b) for b in batches])
    return {
        "rows": len(ref),
        "label_agreement": float(np.mean(ref.argmax(-1) == new.argmax(-1))),
        "max_abs_logit_diff": float(np.abs(ref - new).max()),
    }


def _int8(ctx: StageContext[EngineSpec], folder: Path) -> tuple[dict, list[str]]:
    """Symmetric Q/DQ on the linear layers of the plain graph (TensorRT fuses for itself), per-channel
    weight scales, statically calibrated on dev rows, with the shared fallback and shape check."""
    search = ctx.spec.int8
    with preparing(
        ctx.inputs["onnx"].path,
        fuse_graph=False,
        static=True,
        calibration_rows=search.calibration_rows,
        dev=ctx.splits.dev,
        max_length=ctx.recipe.data.max_length,
        work=ctx.out_dir,
        progress=ctx.progress,
    ) as prepared:
        scheme = scheme_for("tensorrt", mode="static", per_channel=True, op_types=["MatMul", "Gemm"])
        return build_int8(
            prepared,
            scheme,
            search,
            table="engine.int8",
            dev=ctx.splits.dev,
            test=ctx.splits.test,
            out=folder,
            progress=ctx.progress,
        )


def _engine_notes(
    folder: Path, name: str, precision: str, profile: dict, blocked: str | None, built: dict | None
) -> dict:
    """engine.json and ENGINE.md: how to build and check the engine on the device later."""
    inputs = [i.name for i in onnx.load(str(folder / "model.onnx"), load_external_data=False).graph.input]
    commands = {
        "trtexec": tensorrt.trtexec_command("model.onnx", "model.engine", profile, inputs),
        "compress": f"compress engine targets/{name}",
    }
    record = {"precision": precision, "profile": profile, "built": blocked is None, "reason": blocked}
    if built is not None:  # an engine only runs on the GPU model and TensorRT version it was built with
        record["built_for"] = {k: built[k] for k in ("tensorrt", "gpu", "compute_capability")}
    record["commands"] = commands
    (folder / "ENGINE.md").write_text(
        f"# TensorRT {precision} engine\n\n"
        + (
            f"Not built where this bundle was made: {blocked}.\n"
            if blocked
            else "model.engine runs only on the GPU and TensorRT version named in engine.json "
            "(`built_for`).\n"
        )
        + "\nBuild it on the target device from the bundled ONNX (shapes: "
        + f"{profile['min']} .. {profile['max']}, tuned for {profile['opt']}):\n\n"
        + f"    {commands['trtexec']}\n\nor, with compress installed there (builds, then checks it "
        + "against the ONNX graph in ONNX Runtime):\n\n"
        + f"    {commands['compress']}\n"
    )
    return record


def _fp16_graph(ctx: StageContext[EngineSpec], folder: Path) -> tuple[dict, str, list[str]]:
    """The FP16 graph in `folder`: what it kept FP32, how it answers against FP32 ONNX, a note."""
    src = ctx.inputs["onnx"].path
    folder.mkdir()
    for f in src.iterdir():
        if f.suffix != ".onnx":
            shutil.copy2(f, folder / f.name)
    with ctx.progress.bar("engine: FP16 graph", 2) as advance:
        kept = convert_fp16(src / "model.onnx", folder / "model.onnx", ctx.spec.fp16_keep_fp32)
        advance()
        record = {"fp32_ops": kept, "against_fp32_onnx_on_dev": _agreement(src, folder, ctx)}
        advance()
    unkept = [op for op, k in kept.items() if k["fp32"] < k["nodes"]]
    failures = [f"fp16: {', '.join(unkept)} nodes are not all FP32"] if unkept else []
    a = record["against_fp32_onnx_on_dev"]
    kept_text = ", ".join(f"{k['fp32']}/{k['nodes']} {op}" for op, k in kept.items())
    note = (
        f"fp16 graph: {kept_text} kept "
        f"FP32; {a['label_agreement']:.2%} of {a['rows']} dev labels as FP32 ONNX, "
        f"max |Δlogit| {a['max_abs_logit_diff']:.2g}"
    )
    return record, note, failures


def _int8_graph(ctx: StageContext[EngineSpec], folder: Path) -> tuple[dict, str, list[str]]:
    """The Q/DQ graph in `folder`, checked as TensorRT will read it, and a note."""
    record, int8_failures = _int8(ctx, folder)
    record["qdq"] = qdq_summary(folder / "model.onnx")
    onnx.checker.check_model(str(folder / "model.onnx"))
    q = record["qdq"]
    note = (
        f"int8 graph: symmetric Q/DQ ({q['nonzero_zero_points']} non-zero zero points), "
        f"{q['per_channel_weights']} per-channel weight scales; " + record["notes"][0]
    )
    return record, note, [f"int8: {f}" for f in int8_failures]


def run(ctx: StageContext[EngineSpec]) -> StageResult:
    """Per precision its targets ask for: the graph, its checks, and the engine where one can be built."""
    spec = ctx.spec
    blocked = tensorrt.unavailable()
    made: list[NewArtifact] = []
    metrics: dict[str, Any] = {"builds": {}, "notes": []}
    failures: list[str] = []
    for precision, targets in sorted(_targets(ctx.recipe).items()):
        folder_name = f"tensorrt-{precision}"
        folder = ctx.out_dir / folder_name
        profile = profile_of(targets)
        make_graph = _fp16_graph if precision == "fp16" else _int8_graph
        record, note, graph_failures = make_graph(ctx, folder)
        failures += graph_failures
        if blocked is None:
            with ctx.progress.bar(f"engine: TensorRT {precision} build", 1) as advance:
                record["engine"] = tensorrt.build_engine(
                    folder / "model.onnx", folder / "model.engine", profile, spec.workspace_mb
                )
                advance()
        record["tensorrt"] = _engine_notes(
            folder, targets[0].name, precision, profile, blocked, record.get("engine")
        )
        (folder / "engine.json").write_text(json.dumps(record["tensorrt"], indent=1))
        metrics["builds"][precision] = record
        metrics["notes"] += [
            note,
            f"{precision} engine: " + ("built" if blocked is None else f"not built: {blocked}"),
        ]
        made.append(
            NewArtifact(
                f"tensorrt-{precision}",
                "tensorrt",
                precision,
                folder_name,
                serves=tuple(t.name for t in targets),
                proxy=blocked,
            )
        )
    return StageResult(artifacts=made, metrics=metrics, failure="; ".join(failures) or None)
