"""Lowering an FP32 ONNX graph: the INT8 build that both [quantize] and [engine] use (fusion, the
quantization scheme per ISA, calibration, the accuracy-aware fallback, the shape check), the
kernel-level graph rewrites, and FP16 conversion."""
