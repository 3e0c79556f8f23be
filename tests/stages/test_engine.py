"""The engine stage's graphs, checked here without a GPU; the TensorRT build itself runs only
where a CUDA device and the tensorrt package exist, and is skipped elsewhere saying so."""

import importlib.util

import numpy as np
import onnx
import pytest

from compress.quantization.fp16 import convert_fp16, fp32_ops
from compress.runtimes import tensorrt_engine as tensorrt
from compress.stages.engine import profile_of, qdq_summary
from tests.conftest import load_manifest, run_variant

# latency and size budgets no model can meet: judged on an engine, never on a CPU proxy's figures
ENGINE_TARGETS = (
    "\n[engine]\n\n"
    '[[targets]]\nname = "gpu-fp16"\nruntime = "tensorrt"\nprecision = "fp16"\nmax_accuracy_drop = 10.0\n'
    "max_latency_ms = 0.001\nmax_size_mb = 0.001\nallow_proxy = true\n\n"
    '[[targets]]\nname = "jetson-orin-int8"\nruntime = "tensorrt"\nprecision = "int8"\n'
    "max_accuracy_drop = 10.0\nallow_proxy = true\n"
)


INT8_TARGET = '[[targets]]\nname = "x86-onnxruntime-int8"'


@pytest.fixture(scope="module")
def fp32_onnx(first_run, out):
    _, result = first_run
    assert result.returncode == 0, result.stderr
    return (out / "smoke" / "latest" / "targets" / "x86-onnxruntime-fp32" / "model.onnx").resolve()


def test_fp16_graph_is_valid_and_keeps_layernorm_and_softmax_fp32(fp32_onnx, tmp_path):
    kept = convert_fp16(fp32_onnx, tmp_path / "fp16.onnx", ["LayerNormalization", "Softmax"])
    assert kept["LayerNormalization"]["nodes"] > 0 and kept["Softmax"]["nodes"] > 0
    assert all(k["fp32"] == k["nodes"] for k in kept.values())
    model = onnx.load(tmp_path / "fp16.onnx")
    halves = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) > 10  # the weights really are FP16
    io = [*model.graph.input, *model.graph.output]
    assert all(v.type.tensor_type.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.FLOAT) for v in io)
    # without the keep list the same ops become FP16: the check can tell the difference
    convert_fp16(fp32_onnx, tmp_path / "all16.onnx", [])
    assert fp32_ops(tmp_path / "all16.onnx", ["LayerNormalization"])["LayerNormalization"]["fp32"] == 0


def test_profile_covers_every_target_of_a_precision():
    from compress.recipe.schema import Target

    def target(name, **profile):
        return Target(name=name, runtime="tensorrt", precision="fp16", max_accuracy_drop=1.0, profile=profile)

    targets = [
        target("a", min="1x16", opt="1x128", max="8x128"),
        target("b", min="2x8", opt="4x64", max="32x64"),
    ]
    assert profile_of(targets) == {"min": "1x8", "opt": "1x128", "max": "32x128"}


def test_trtexec_line_names_every_input_and_shape():
    line = tensorrt.trtexec_command(
        "model.onnx", "model.engine", {"min": "1x16", "opt": "1x128", "max": "32x256"}, ["input_ids", "mask"]
    )
    assert line == (
        "trtexec --onnx=model.onnx --saveEngine=model.engine --stronglyTyped "
        "--minShapes=input_ids:1x16,mask:1x16 --optShapes=input_ids:1x128,mask:1x128 "
        "--maxShapes=input_ids:32x256,mask:32x256"
    )


def test_this_machine_says_why_no_engine_is_built():
    import torch

    reason = tensorrt.unavailable()
    if torch.cuda.is_available() and importlib.util.find_spec("tensorrt"):
        assert reason is None
    else:
        assert reason and ("no CUDA device" in reason or "tensorrt package is not installed" in reason)


def test_smoke_with_tensorrt_targets_gates_proxies(first_run, out, recipes):
    result, bundle, manifest = run_variant(
        recipes, out, "trt", **{INT8_TARGET: ENGINE_TARGETS + "\n" + INT8_TARGET}
    )
    targets = {t["name"]: t for t in manifest["targets"]}
    if tensorrt.unavailable() is None:  # an engine was built: its latency and size are judged
        fp16 = targets["gpu-fp16"]
        assert fp16["verdict"] == "fail" and {"latency", "size"} <= {g["gate"] for g in fp16["gates"]}
        assert "proxy" not in fp16 or fp16["proxy"] is None
        return
    assert result.returncode == 0, result.stderr
    # stdout is the verdict line only: the static calibrators' progress prints are kept off it
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["PASS"], result.stdout[:300]
    for name in ("gpu-fp16", "jetson-orin-int8"):
        t = targets[name]
        assert t["verdict"] == "proxy"
        assert t["gates"][0]["message"].startswith(f"not-built: {tensorrt.unavailable()}")
        # the fp16 target's impossible latency and size budgets are not judged on CPU figures
        assert {g["gate"] for g in t["gates"]} == {"built", "accuracy", "shapes"}
        folder = bundle / "targets" / name
        assert (folder / "ENGINE.md").read_text().count("trtexec --onnx=model.onnx") == 1
        onnx.checker.check_model(str(folder / "model.onnx"))
    int8 = onnx.load(bundle / "targets" / "jetson-orin-int8" / "model.onnx")
    summary = qdq_summary(bundle / "targets" / "jetson-orin-int8" / "model.onnx")
    assert summary["nonzero_zero_points"] == 0 and summary["per_tensor_weights"] == 0
    assert summary["per_channel_weights"] >= 12  # every linear layer of the two-layer model
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in int8.graph.initializer}
    zero_points = [
        inits[n.input[2]] for n in int8.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2
    ]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    report = (bundle / "report.md").read_text()
    assert "| gpu-fp16 | tensorrt (CPU proxy) | fp16 |" in report and "not measured (no engine)" in report
    assert "proxy only (no engine built): gpu-fp16, jetson-orin-int8" in report


def test_a_required_tensorrt_target_without_an_engine_fails_the_run(first_run, out, recipes):
    import xml.etree.ElementTree as ET

    strict = ENGINE_TARGETS.replace("allow_proxy = true\n\n[[targets]]", "\n[[targets]]", 1)
    result, bundle, manifest = run_variant(
        recipes, out, "trt-strict", **{INT8_TARGET: strict + "\n" + INT8_TARGET}
    )
    if tensorrt.unavailable() is None:
        pytest.skip("an engine is built here: there is no proxy to refuse")
    assert result.returncode == 1
    fp16 = next(t for t in manifest["targets"] if t["name"] == "gpu-fp16")
    assert fp16["verdict"] == "fail"
    failures = [
        (c.get("classname"), c.find("failure").get("message"))
        for c in ET.parse(bundle / "junit.xml").getroot().iter("testcase")
        if c.find("failure") is not None
    ]
    assert [name for name, _ in failures] == ["target.gpu-fp16"]
    assert failures[0][1].startswith("not-built: ") and "allow_proxy = true" in failures[0][1]
    assert load_manifest(bundle)["verdict"] == "fail"


@pytest.mark.skipif(
    tensorrt.unavailable() is not None, reason=f"no TensorRT engine here: {tensorrt.unavailable()}"
)
def test_engine_builds_and_answers_like_the_onnx_graph(fp32_onnx, tmp_path):
    from compress.quantization.fp16 import convert_fp16 as to_fp16

    folder = tmp_path / "fp16"
    folder.mkdir()
    for f in fp32_onnx.parent.iterdir():
        if f.suffix != ".onnx":
            (folder / f.name).write_bytes(f.read_bytes())
    to_fp16(fp32_onnx, folder / "model.onnx", ["LayerNormalization", "Softmax"])
    summary = tensorrt.build_and_check(
        folder, tmp_path / "m.engine", {"min": "1x16", "opt": "1x64", "max": "8x128"}
    )
    assert summary["passed"] and summary["gpu"]
