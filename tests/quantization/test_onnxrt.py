from compress.quantization.onnxrt import Calibration, scheme_for


def scheme(isa):
    return scheme_for(isa, mode="dynamic", per_channel=False, op_types=None)


def test_settings_per_isa():
    # without VNNI, u8 x s8 products saturate in 16 bits: weights drop to 7 bits there only
    assert scheme("avx2").reduce_range is True
    assert scheme("avx512_vnni").reduce_range is False
    assert scheme("arm64").activation == "QInt8"
    assert scheme("avx512_vnni").activation == "QUInt8"
    # TensorRT reads symmetric Q/DQ with per-output-channel weight scales
    trt = scheme_for("tensorrt", mode="static", per_channel=True, op_types=["MatMul"])
    assert trt.extra["ActivationSymmetric"] and trt.extra["WeightSymmetric"] and trt.op_types == ("MatMul",)


def test_calibration_batches_have_one_shape():
    calib = Calibration([[1, 5, 2], [1, 2], [1, 9, 9, 9, 2]] * 10, 0, 8, {"input_ids", "attention_mask"})
    shapes = {b["input_ids"].shape[1] for b in calib.batches}
    assert shapes == {8}
    first = calib.get_next()
    assert set(first) == {"input_ids", "attention_mask"}
    assert first["attention_mask"][1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    calib.rewind()
    assert calib.get_next() is first
