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
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from compress import tensorrt
from compress.data import pad_batch, tokenize
from compress.modeling import load_tokenizer
from compress.recipe import QuantizeSpec
from compress.runtimes import RUNTIMES
from compress.stages import NewArtifact, StageContext, StageResult
from compress.stages.quantize import build_int8


def _targets(recipe) -> dict[str, list]:
    """precision -> the tensorrt targets asking for it."""
    out: dict[str, list] = {}
    for t in recipe.targets:
        if t.runtime == "tensorrt":
            out.setdefault(t.precision, []).append(t)
    return out


def profile_of(targets) -> dict[str, str]:
    """One engine per precision, covering every target's range: smallest min, largest max."""

    def pick(key, fn):
        shapes = [tuple(int(x) for x in getattr(t.profile, key).split("x")) for t in targets]
        return "x".join(str(fn(s[i] for s in shapes)) for i in range(2))

    return {"min": pick("min", min), "opt": targets[0].profile.opt, "max": pick("max", max)}


def reads(recipe) -> dict:
    """Part of the cache key: which precisions and shape ranges the TensorRT targets ask for."""
    return {p: [profile_of(ts), [t.name for t in ts]] for p, ts in sorted(_targets(recipe).items())}


def convert_fp16(src: Path, dst: Path, keep_fp32: list[str]) -> dict:
    """FP16 graph with FP32 inputs/outputs and `keep_fp32` op types left FP32; onnx.checker'd."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = convert_float_to_float16(
        onnx.load(str(src)), keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(keep_fp32)
    )
    _toposort(model.graph)  # the converter appends its Cast nodes; ONNX (and TensorRT) want order
    onnx.save(model, str(dst))
    onnx.checker.check_model(str(dst))
    return fp32_ops(dst, keep_fp32)


def _toposort(graph) -> None:
    """Reorder `graph.node` so every node comes after the producers of its inputs."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(x in ready for x in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input near node {rest[0].name}")
        pending = rest
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def fp32_ops(path: Path, op_types: list[str]) -> dict[str, dict]:
    """Per op type: how many nodes there are and how many read and write only FP32 tensors."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input]}
    types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.output})
    types.update({i.name: i.data_type for i in model.graph.initializer})
    out = {}
    for op in op_types:
        nodes = [n for n in model.graph.node if n.op_type == op]
        fp32 = [
            n
            for n in nodes
            if all(types.get(x) == onnx.TensorProto.FLOAT for x in [*n.input, *n.output] if x and x in types)
        ]
        out[op] = {"nodes": len(nodes), "fp32": len(fp32)}
    return out


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


def _agreement(src: Path, folder: Path, ctx: StageContext, rows: int = 256) -> dict:
    """The converted graph against the FP32 ONNX model on dev rows, in ONNX Runtime on the CPU."""
    tokenizer = load_tokenizer(src)
    ids = tokenize(tokenizer, ctx.splits["dev"].texts[:rows], ctx.recipe.data.max_length)
    batches = [pad_batch(ids[i : i + 32], tokenizer.pad_token_id or 0) for i in range(0, len(ids), 32)]
    ref = np.concatenate([RUNTIMES["onnxruntime"](src)(b) for b in batches])
    new = np.concatenate([RUNTIMES["onnxruntime"](folder)(b) for b in batches])
    return {
        "rows": len(ref),
        "label_agreement": float(np.mean(ref.argmax(-1) == new.argmax(-1))),
        "max_abs_logit_diff": float(np.abs(ref - new).max()),
    }


def _int8_spec(spec) -> QuantizeSpec:
    s = spec.int8
    return QuantizeSpec(
        mode="static",
        calibration=s.calibration,
        calibration_rows=s.calibration_rows,
        per_channel=True,
        op_types=["MatMul", "Gemm"],
        fuse=False,  # TensorRT fuses for itself; it wants the plain graph
        max_accuracy_drop=s.max_accuracy_drop,
        max_trials=s.max_trials,
        check_shapes=s.check_shapes,
        check_rows=s.check_rows,
        min_label_agreement=s.min_label_agreement,
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


def run(ctx: StageContext) -> StageResult:
    spec = ctx.spec
    src = ctx.inputs["onnx"].path
    blocked = tensorrt.unavailable()
    made, metrics, failures = [], {"builds": {}, "notes": []}, []
    for precision, targets in sorted(_targets(ctx.recipe).items()):
        folder_name = f"tensorrt-{precision}"
        folder = ctx.out_dir / folder_name
        profile = profile_of(targets)
        if precision == "fp16":
            folder.mkdir()
            for f in src.iterdir():
                if f.suffix != ".onnx":
                    shutil.copy2(f, folder / f.name)
            with ctx.progress.bar("engine: FP16 graph", 2) as advance:
                kept = convert_fp16(src / "model.onnx", folder / "model.onnx", spec.fp16_keep_fp32)
                advance()
                build = {"fp32_ops": kept, "against_fp32_onnx_on_dev": _agreement(src, folder, ctx)}
                advance()
            unkept = [op for op, k in kept.items() if k["fp32"] < k["nodes"]]
            if unkept:
                failures.append(f"fp16: {', '.join(unkept)} nodes are not all FP32")
            a = build["against_fp32_onnx_on_dev"]
            kept_text = ", ".join(f"{k['fp32']}/{k['nodes']} {op}" for op, k in kept.items())
            note = (
                f"fp16 graph: {kept_text} kept "
                f"FP32; {a['label_agreement']:.2%} of {a['rows']} dev labels as FP32 ONNX, "
                f"max |Δlogit| {a['max_abs_logit_diff']:.2g}"
            )
        else:
            int8_ctx = replace(ctx, spec=_int8_spec(spec))
            build, int8_failures = build_int8(int8_ctx, "tensorrt", folder)
            failures += [f"int8: {f}" for f in int8_failures]
            build["qdq"] = qdq_summary(folder / "model.onnx")
            onnx.checker.check_model(str(folder / "model.onnx"))
            q = build["qdq"]
            note = (
                f"int8 graph: symmetric Q/DQ ({q['nonzero_zero_points']} non-zero zero points), "
                f"{q['per_channel_weights']} per-channel weight scales; " + build["notes"][0]
            )
        if blocked is None:
            with ctx.progress.bar(f"engine: TensorRT {precision} build", 1) as advance:
                build["engine"] = tensorrt.build_engine(
                    folder / "model.onnx", folder / "model.engine", profile, spec.workspace_mb
                )
                advance()
        build["tensorrt"] = _engine_notes(
            folder, targets[0].name, precision, profile, blocked, build.get("engine")
        )
        (folder / "engine.json").write_text(json.dumps(build["tensorrt"], indent=1))
        metrics["builds"][precision] = build
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
