import pytest

import compress.stages.quantize as q


@pytest.mark.parametrize(
    "machine,isa,expected",
    [
        ("x86_64", ["avx2", "avx512f", "avx512_vnni"], "avx512_vnni"),
        ("x86_64", ["avx2", "avx_vnni"], "avx512_vnni"),
        ("x86_64", ["avx2", "fma"], "avx2"),
        ("aarch64", ["asimd"], "arm64"),
    ],
)
def test_auto_isa(monkeypatch, machine, isa, expected):
    monkeypatch.setattr(q, "cpu_info", lambda: {"machine": machine, "isa": isa, "model": "x"})
    assert q.resolve_isa("auto") == expected
    assert q.resolve_isa("avx2") == "avx2"


def test_settings_per_isa():
    # without VNNI, u8 x s8 products saturate in 16 bits: weights drop to 7 bits there only
    assert q.quant_settings("avx2")["reduce_range"] is True
    assert q.quant_settings("avx512_vnni")["reduce_range"] is False
    assert q.quant_settings("arm64")["activation"].name == "QInt8"
    assert q.quant_settings("avx512_vnni")["activation"].name == "QUInt8"


def test_calibration_batches_have_one_shape():
    calib = q._Calibration([[1, 5, 2], [1, 2], [1, 9, 9, 9, 2]] * 10, 0, 8, {"input_ids", "attention_mask"})
    shapes = {b["input_ids"].shape[1] for b in calib.batches}
    assert shapes == {8}
    first = calib.get_next()
    assert set(first) == {"input_ids", "attention_mask"}
    assert first["attention_mask"][1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    calib.rewind()
    assert calib.get_next() is first


def test_one_build_per_isa_named_by_int8_targets(monkeypatch):
    from types import SimpleNamespace as T

    monkeypatch.setattr(q, "cpu_info", lambda: {"machine": "x86_64", "isa": ["avx512_vnni"], "model": "x"})
    targets = [
        T(name="fp32", runtime="onnxruntime", precision="fp32", isa=None),
        T(name="here", runtime="onnxruntime", precision="int8", isa=None),
        T(name="old-xeon", runtime="onnxruntime", precision="int8", isa="avx2"),
        T(name="also-here", runtime="onnxruntime", precision="int8", isa="avx512_vnni"),
    ]
    assert q.isa_builds(targets, "auto") == {"avx512_vnni": ["here", "also-here"], "avx2": ["old-xeon"]}
    assert q.isa_builds(targets[:1], "arm64") == {"arm64": []}
