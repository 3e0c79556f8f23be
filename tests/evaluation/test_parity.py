import numpy as np
import onnx
from onnx import TensorProto, helper

from compress.evaluation.parity import dynamic_axes_problems, parity


def test_parity_measures_max_diff_and_agreement():
    batches = [{"x": np.zeros(3)}, {"x": np.zeros(2)}]
    ref = lambda b: np.array([[1.0, 0.0]] * len(b["x"]))  # noqa: E731
    cand = lambda b: np.array([[1.0, 0.5]] * (len(b["x"]) - 1) + [[0.0, 1.0]])  # noqa: E731
    result = parity(ref, cand, batches)
    assert result["rows"] == 5
    assert result["max_abs_logit_diff"] == 1.0
    assert result["label_agreement"] == 3 / 5


def test_fixed_axes_are_reported(tmp_path):
    def model(dims):
        inp = helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims)
        out = helper.make_tensor_value_info("logits", TensorProto.INT64, dims)
        graph = helper.make_graph(
            [helper.make_node("Identity", ["input_ids"], ["logits"])], "g", [inp], [out]
        )
        path = tmp_path / f"{len(str(dims))}.onnx"
        onnx.save(helper.make_model(graph), path)
        return path

    assert dynamic_axes_problems(model(["batch", "sequence"])) == []
    assert dynamic_axes_problems(model([1, "sequence"])) == ["input 'input_ids' has fixed axes [0]"]
