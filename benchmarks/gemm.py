"""Timing helpers for benchmarks.alternatives: paired A/B speedups, and the multiply-accumulate rate
each runtime reaches on one large GEMM per precision (the floor a model's MACs could run at)."""

from __future__ import annotations

import os
import time

import numpy as np

from benchmarks.common import IDLE_GAP_S, interleaved_latency

GEMM = 2048  # M = K = N: large enough that packing and call overhead vanish
interleaved = interleaved_latency


def feed(batch: int, sequence: int) -> dict:
    ids = np.random.default_rng(0).integers(1000, 30000, size=(batch, sequence), dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def paired_speedup(reference, candidate, batch: int, sequence: int, rounds: int) -> dict:
    """reference time / candidate time, the two alternating call by call (who goes first alternates
    too): the ratio of medians, and the 10th-90th percentile of the per-round ratios."""
    inputs = feed(batch, sequence)
    for _ in range(3):
        reference(inputs), candidate(inputs)
    ref_ms, cand_ms = [], []
    for i in range(rounds):
        order = ((reference, ref_ms), (candidate, cand_ms))
        for predict, times in order if i % 2 == 0 else order[::-1]:
            time.sleep(IDLE_GAP_S)
            start = time.perf_counter()
            predict(inputs)
            times.append((time.perf_counter() - start) * 1000)
    ratios = np.asarray(ref_ms) / np.asarray(cand_ms)
    return {
        "speedup": round(float(np.median(ref_ms) / np.median(cand_ms)), 3),
        "p10": round(float(np.percentile(ratios, 10)), 3),
        "p90": round(float(np.percentile(ratios, 90)), 3),
        "reference_ms": round(float(np.median(ref_ms)), 2),
        "candidate_ms": round(float(np.median(cand_ms)), 2),
        "rounds": rounds,
    }


def _best_rate(call, macs: int, repeats: int = 10) -> float:
    call()
    best = min(_seconds(call) for _ in range(repeats))
    return macs / best / 1e9


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def torch_rate(dtype_name: str) -> float:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(GEMM, GEMM).to(dtype)
    b = torch.randn(GEMM, GEMM).to(dtype)
    with torch.inference_mode():
        return _best_rate(lambda: torch.matmul(a, b), GEMM**3)


def _onnxruntime_gemm(precision: str, m: int, k: int, n: int):
    """A session running one MatMul (fp32, bf16) or MatMulInteger (uint8 activations x int8 weights,
    what dynamic quantization runs) of [m, k] x [k, n], the weight an initializer as in a model, and
    its input; the input is None where numpy cannot make it (bf16)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    kinds = {
        "fp32": ("MatMul", TensorProto.FLOAT, TensorProto.FLOAT),
        "int8": ("MatMulInteger", TensorProto.UINT8, TensorProto.INT32),
        "bf16": ("MatMul", TensorProto.BFLOAT16, TensorProto.BFLOAT16),
    }
    op, a_type, out_type = kinds[precision]
    if precision == "int8":
        weight = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w")
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    elif precision == "fp32":
        weight = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")
        a = rng.standard_normal((m, k), dtype=np.float32)
    else:  # numpy has no bfloat16: the weight as raw bits; a session is all we can ask for
        raw = np.zeros((k, n), dtype=np.uint16).tobytes()
        weight, a = helper.make_tensor("w", TensorProto.BFLOAT16, (k, n), raw, raw=True), None
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("a", a_type, (m, k))],
        [helper.make_tensor_value_info("y", out_type, (m, n))],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = os.cpu_count() or 1  # as the model sessions
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), a


def onnxruntime_rate(precision: str) -> float:
    """GMAC/s of one large GEMM (GEMM^3) in ONNX Runtime. Raises where the CPU provider has no kernel
    for the precision."""
    session, a = _onnxruntime_gemm(precision, GEMM, GEMM, GEMM)
    if a is None:
        raise RuntimeError("a bf16 session loaded, but numpy cannot feed bfloat16 inputs")
    return _best_rate(lambda: session.run(None, {"a": a}), GEMM**3)


def onnxruntime_int8_gemm_ms(m: int, k: int, n: int, repeats: int = 20) -> float:
    """Milliseconds of one bare INT8 GEMM (MatMulInteger) of [m, k] x [k, n] here, the best of
    `repeats`: what one of a model's linear layers costs with nothing around it."""
    session, a = _onnxruntime_gemm("int8", m, k, n)
    session.run(None, {"a": a})
    return min(_seconds(lambda: session.run(None, {"a": a})) for _ in range(repeats)) * 1000


def rates() -> dict[str, dict]:
    """GMAC/s per runtime and precision: {"gmacs": rate} or {"error": why there is none}."""
    from compress.core.environment import cpu_has_native_bf16

    measures = {
        "torch fp32": lambda: torch_rate("fp32"),
        "onnxruntime fp32": lambda: onnxruntime_rate("fp32"),
        "onnxruntime int8": lambda: onnxruntime_rate("int8"),
    }
    if cpu_has_native_bf16():
        measures["torch bf16"] = lambda: torch_rate("bf16")
        measures["onnxruntime bf16"] = lambda: onnxruntime_rate("bf16")
    out = {}
    for name, measure in measures.items():
        try:
            out[name] = {"gmacs": round(measure(), 1)}
        except Exception as exc:
            out[name] = {"error": str(exc).splitlines()[0][:160]}
    return out
