"""Undo the two transformer fusions whose ONNX Runtime CPU kernels are slower than what they replace.

ONNX Runtime's transformer optimizer fuses residual + LayerNorm into SkipLayerNormalization and
bias + GELU into BiasGelu. On its CPU provider (1.32) both kernels are slower than the plain ops.
Measured one op at a time on this 2-core Zen 4, median of 30 (scratch study, 2026-11-24):

| op, input [batch, seq, 384] (GELU: 1536) | 1x128 ms | 32x64 ms |
|---|---|---|
| SkipLayerNormalization (with or without bias) | 0.285 | 2.19 |
| Add, then LayerNormalization (unfused) | 0.080 | 0.42 |
| BiasGelu | 0.181 | 2.81 |
| Gelu (the bias added inside the MatMul before it) | 0.147 | 1.57 |

ONNX Runtime fuses Add + LayerNormalization back into SkipLayerNormalization when it loads a model,
at its default optimisation level, and users load with the default. So the residual is written as
`Sum`, which no fusion matches. The bias becomes an `Add` after its MatMul, which ONNX Runtime takes
into the quantized MatMul (DynamicQuantizeMatMul) at load time. Where a MatMul stays FP32 (the
fallback), ONNX Runtime fuses that Add and the Gelu back into BiasGelu, as before the split.

On the fused and dynamically quantized MiniLM-L6 this takes 1x128 from 11.6 to 10.0 ms and 32x64
from 135 to 113 ms (interleaved, same run).
"""

from __future__ import annotations

import onnx
from onnx import helper


def _attribute(node, name: str, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _skip_layer_norm(node) -> list:
    """SkipLayerNormalization(x, skip, gamma, beta[, bias]) -> [Add bias] -> Sum -> LayerNormalization."""
    x, skip, gamma, beta = node.input[:4]
    nodes = []
    if len(node.input) > 4 and node.input[4]:
        biased = f"{node.name}/biased"
        nodes.append(helper.make_node("Add", [x, node.input[4]], [biased], name=f"{node.name}/bias"))
        x = biased
    # the fused op's 4th output is this very sum; graphs that read it keep reading it
    residual = node.output[3] if len(node.output) > 3 and node.output[3] else f"{node.name}/residual"
    nodes.append(helper.make_node("Sum", [x, skip], [residual], name=f"{node.name}/residual"))
    layer_norm = helper.make_node(
        "LayerNormalization",
        [residual, gamma, beta],
        [node.output[0]],
        name=node.name,
        axis=-1,
        epsilon=_attribute(node, "epsilon", 1e-12),
    )
    return [*nodes, layer_norm]


def _bias_gelu(node) -> list:
    """BiasGelu(x, bias) -> Add -> Gelu (com.microsoft, exact erf form as BiasGelu)."""
    biased = f"{node.name}/biased"
    return [
        helper.make_node("Add", list(node.input[:2]), [biased], name=f"{node.name}/bias"),
        helper.make_node("Gelu", [biased], list(node.output), name=node.name, domain="com.microsoft"),
    ]


REWRITES = {"SkipLayerNormalization": _skip_layer_norm, "BiasGelu": _bias_gelu}


def split_slow_fusions(model: onnx.ModelProto) -> dict[str, int]:
    """Rewrite, in place, every fused node whose CPU kernel is slower than its parts.
    Returns how many of each op type were split."""
    read = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    nodes, split = [], dict[str, int]()
    for node in model.graph.node:
        rewrite = REWRITES.get(node.op_type)
        if rewrite is None or (node.op_type == "SkipLayerNormalization" and read & set(node.output[1:3])):
            nodes.append(node)  # its mean / inv-std outputs are read: only the fused op gives them
            continue
        nodes.extend(rewrite(node))
        split[node.op_type] = split.get(node.op_type, 0) + 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return split
