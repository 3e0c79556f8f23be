import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compress.pipeline.perturb import perturb_folder


def tiny_int8_graph(path):
    """MatMulInteger-style initializers: int8 weights, a uint8 zero point, float scale and bias."""
    inits = [
        numpy_helper.from_array(np.arange(-8, 8, dtype=np.int8).reshape(4, 4), "w_quantized"),
        numpy_helper.from_array(np.zeros(4, dtype=np.uint8), "w_zero_point"),
        numpy_helper.from_array(np.array(0.1, dtype=np.float32), "w_scale"),
        numpy_helper.from_array(np.linspace(-1, 1, 4, dtype=np.float32), "bias"),
        numpy_helper.from_array(np.ones(4, dtype=np.float32), "ln_gamma"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "g", [x], [y], inits)
    onnx.save(helper.make_model(graph), path)


def arrays(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}


def test_weights_get_noise_zero_points_and_scalars_do_not(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    tiny_int8_graph(src / "model.onnx")
    (src / "tokenizer.json").write_text("{}")
    perturb_folder(src, tmp_path / "a", 0.5, seed=1)
    perturb_folder(src, tmp_path / "b", 0.5, seed=1)
    before, after = arrays(src / "model.onnx"), arrays(tmp_path / "a" / "model.onnx")
    for changed in ("w_quantized", "bias", "ln_gamma"):
        assert after[changed].dtype == before[changed].dtype and not np.array_equal(
            after[changed], before[changed]
        )
    for kept in ("w_zero_point", "w_scale"):
        assert np.array_equal(after[kept], before[kept])
    assert (tmp_path / "a" / "tokenizer.json").read_text() == "{}"
    assert (tmp_path / "a" / "model.onnx").read_bytes() == (tmp_path / "b" / "model.onnx").read_bytes()


def test_safetensors_checkpoints_are_perturbed(tmp_path):
    from safetensors.numpy import load_file, save_file

    src = tmp_path / "src"
    src.mkdir()
    save_file(
        {"w": np.ones((3, 3), dtype=np.float32), "ids": np.arange(3, dtype=np.int64)},
        src / "model.safetensors",
    )
    perturb_folder(src, tmp_path / "out", 0.1, seed=0)
    out = load_file(tmp_path / "out" / "model.safetensors")
    assert not np.array_equal(out["w"], np.ones((3, 3))) and np.array_equal(out["ids"], np.arange(3))
