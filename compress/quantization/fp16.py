"""FP16 graphs for TensorRT: weights and activations FP16, the reductions that overflow kept FP32."""

from __future__ import annotations

from pathlib import Path

import onnx


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
