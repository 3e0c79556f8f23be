"""Where an ONNX graph's time goes, per op type, from ONNX Runtime's own profiler.

    python -m benchmarks.onnx_profile FOLDER [--batch 32 --sequence 64 --runs 20]

`make bench` uses `op_times` for the INT8 graphs' GEMM share at 32x64. The profiler records each
kernel's duration; the share is the GEMM ops' kernel time over all kernels' time (the session's
own overhead between kernels is not in either).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmarks.common import print_profile, share_of

# The ops that multiply a quantized weight: the INT8 GEMMs. QAttention is counted whole (its fused QKV
# projection is the GEMM; its attention core, the FP32 QK^T / softmax / xV, runs inside the same kernel
# and cannot be split out by the profiler), which the report says.
INT8_GEMM_OPS = frozenset(
    {
        "MatMulInteger",
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QGemm",
        "QLinearMatMul",
        "QAttention",
        "MatMulNBits",
    }
)


def op_times(folder: Path, batch: int, sequence: int, runs: int = 20) -> dict[str, float]:
    """Milliseconds per call spent in each op type of `folder/model.onnx` at batch x sequence."""
    import onnxruntime as ort

    from benchmarks.gemm import feed

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = os.cpu_count() or 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        wanted = {i.name for i in session.get_inputs()}
        inputs = {k: v for k, v in feed(batch, sequence).items() if k in wanted}
        for _ in range(3):  # warm-up: profiled too, left out below by their run's window
            session.run(None, inputs)
        for _ in range(runs):
            session.run(None, inputs)
        events = json.loads(Path(session.end_profiling()).read_text())
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[-runs:]
    per_op: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if any(start <= event["ts"] <= end for start, end in windows):
            per_op[event["args"]["op_name"]] += event["dur"] / 1000  # microseconds
    return {op: round(ms / len(windows), 3) for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])}


def gemm_share(times: dict[str, float]) -> float:
    """The INT8 GEMM ops' fraction of all kernels' time."""
    return share_of(times, INT8_GEMM_OPS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_profile")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sequence", type=int, default=64)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    times = op_times(args.folder, args.batch, args.sequence, args.runs)
    print_profile(times, "op", args.batch, args.sequence)
    print(f"\nINT8 GEMM ops ({', '.join(sorted(INT8_GEMM_OPS))}): {gemm_share(times):.1%} of kernel time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
