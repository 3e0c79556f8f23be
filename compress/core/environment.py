"""What machine and toolchain a run happened on: recorded in every manifest and cache key."""

from __future__ import annotations

import os
import platform
import sys
from functools import cache

# ISA flags that decide which kernels (and so which INT8/BF16 paths) a CPU runs.
ISA_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "bf16",
    "i8mm",
    "sve",
)


@cache
def cpu_threads() -> int:
    """Threads for one process's inference and training: every core, unless OMP_NUM_THREADS says fewer
    (a CI runner that runs several jobs at once, the test suite's one worker per core)."""
    limit = os.environ.get("OMP_NUM_THREADS", "")
    cores = os.cpu_count() or 1
    return min(cores, int(limit)) if limit.isdigit() and int(limit) > 0 else cores


@cache
def cpu_info() -> dict:
    """The CPU's model name, machine type and the ISA flags in ISA_FLAGS that it has."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model,
        "machine": platform.machine(),
        "isa": sorted(f for f in ISA_FLAGS if f in flags),
    }


def cpu_has_native_bf16() -> bool:
    """True where bf16 matrix work runs natively (AVX512-BF16, AMX, Arm BF16) rather than emulated."""
    isa = set(cpu_info()["isa"])
    return bool(isa & {"avx512_bf16", "amx_bf16"}) or ("bf16" in isa and "asimd" in isa)


def python_version() -> str:
    """This interpreter's version, e.g. "3.11.7"."""
    return sys.version.split()[0]


def versions() -> dict[str, str]:
    """Versions of everything whose change can change a stage's output (part of cache keys).
    TensorRT is listed where it is installed (read from its package metadata, not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    import onnx
    import onnxruntime
    import torch
    import transformers

    found = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    for package in ("tensorrt",):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
