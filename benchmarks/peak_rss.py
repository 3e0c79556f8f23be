"""Peak resident memory of a fresh process that loads one model and answers batch 32 x 64 three times.

python -m benchmarks.peak_rss torch|torch.compile|onnxruntime FOLDER    (prints JSON)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def high_water_kib() -> int:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that over from the
    parent across fork and exec, so every child of a large benchmark process would report the
    parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main() -> int:
    runtime, folder = sys.argv[1], Path(sys.argv[2])
    from benchmarks.gemm import feed
    from compress.runtimes import RUNTIMES

    if runtime == "torch.compile":
        from benchmarks.alternatives import compiled_predictor

        predict = compiled_predictor(folder)
    else:
        predict = RUNTIMES[runtime](folder)
    inputs = feed(32, 64)
    for _ in range(3):
        predict(inputs)
    print(json.dumps({"peak_mb": round(high_water_kib() * 1024 / 1e6, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
