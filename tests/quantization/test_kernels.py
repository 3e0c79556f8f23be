import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from compress.quantization.kernels import split_slow_fusions

HIDDEN, FFN = 8, 16


def fused_block(skip_sum_read: bool = False) -> onnx.ModelProto:
    """x -> SkipLayerNormalization(x, skip, bias) -> MatMul -> BiasGelu: the optimizer's BERT ops."""
    rng = np.random.default_rng(0)
    weights = {
        "gamma": rng.normal(1, 0.1, HIDDEN),
        "beta": rng.normal(0, 0.1, HIDDEN),
        "bias": rng.normal(0, 0.1, HIDDEN),
        "w": rng.normal(0, 0.3, (HIDDEN, FFN)),
        "gelu_bias": rng.normal(0, 0.1, FFN),
    }
    outputs = ["normed", "", "", "skip_sum"] if skip_sum_read else ["normed"]
    nodes = [
        helper.make_node(
            "SkipLayerNormalization",
            ["x", "skip", "gamma", "beta", "bias"],
            outputs,
            name="sln",
            domain="com.microsoft",
            epsilon=1e-12,
        ),
        helper.make_node("MatMul", ["normed", "w"], ["up"], name="up"),
        helper.make_node("BiasGelu", ["up", "gelu_bias"], ["y"], name="gelu", domain="com.microsoft"),
    ]
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if skip_sum_read:
        graph_outputs.append(helper.make_tensor_value_info("skip_sum", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "block",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "s", HIDDEN]) for n in ("x", "skip")],
        graph_outputs,
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 9
    return model


def run(model: onnx.ModelProto, feed: dict, optimized_to=None) -> list[np.ndarray]:
    options = ort.SessionOptions()
    if optimized_to is not None:  # what ONNX Runtime makes of the graph at its default level
        options.optimized_model_filepath = str(optimized_to)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


@pytest.mark.parametrize("skip_sum_read", [False, True])
def test_split_graph_answers_as_the_fused_one_and_is_not_fused_back(tmp_path, skip_sum_read):
    rng = np.random.default_rng(1)
    feed = {n: rng.normal(0, 1, (2, 5, HIDDEN)).astype(np.float32) for n in ("x", "skip")}
    fused = fused_block(skip_sum_read)
    expected = run(fused, feed)

    split_model = fused_block(skip_sum_read)
    assert split_slow_fusions(split_model) == {"SkipLayerNormalization": 1, "BiasGelu": 1}
    for want, have in zip(expected, run(split_model, feed), strict=True):
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)

    # quantized, the bias goes into DynamicQuantizeMatMul and nothing is fused back at load time
    onnx.save(split_model, tmp_path / "split.onnx")
    quantize_dynamic(
        tmp_path / "split.onnx",
        tmp_path / "int8.onnx",
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    run(onnx.load(tmp_path / "int8.onnx"), feed, optimized_to=tmp_path / "loaded.onnx")
    loaded = {n.op_type for n in onnx.load(tmp_path / "loaded.onnx").graph.node}
    assert not loaded & {"SkipLayerNormalization", "BiasGelu"}, loaded
    assert {"LayerNormalization", "Gelu", "DynamicQuantizeMatMul"} <= loaded, loaded


def test_a_skip_layer_norm_whose_statistics_are_read_stays_fused():
    model = fused_block()
    model.graph.node[0].output.extend(["mean", ""])
    model.graph.output.append(helper.make_tensor_value_info("mean", TensorProto.FLOAT, None))
    assert split_slow_fusions(model) == {"BiasGelu": 1}
    assert model.graph.node[0].op_type == "SkipLayerNormalization"
