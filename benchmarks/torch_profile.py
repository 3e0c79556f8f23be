"""Where a torch/int8 target's time goes, per kernel kind, from PyTorch's profiler.

    python -m benchmarks.torch_profile FOLDER [--batch 32 --sequence 64 --runs 10] [--plain]

FOLDER is a bundle's torch-int8 target. A served AOTInductor package records nothing the profiler
sees, so its program (`model.pt2`) is compiled again with Inductor's per-kernel profiling
(`cpp.enable_kernel_profile`): the same kernels, each in a record. Which package: the fused one
(oneDNN INT8 linears with GELU and residual adds fused, `fuse_post_ops`), or with `--plain` Inductor's
plain lowering. Not the autotuned one: Inductor's C++ GEMM templates fail to build with kernel
profiling on and autotune falls back to oneDNN, so that profile would not be of the served kernels.
Kinds: oneDNN's INT8 linear (`qlinear`), Inductor's C++ INT8 GEMM templates, the attention core
(SDPA, FP32), Inductor's fused elementwise kernels (LayerNorm, adds, GELU where not fused, quantize),
and the time per call no record covers. `make bench` runs it (`--json`) in a
fresh process per row for the torch/int8 rows' GEMM share at 32x64: in the benchmark's own process,
where the served packages are loaded, the fused kernels' records went missing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

from benchmarks.common import print_profile, share_of

UNRECORDED = "not in any record (wall time minus the kernels)"
INT8_GEMM_KINDS = frozenset({"INT8 linear (oneDNN qlinear)", "INT8 GEMM template (Inductor C++)"})
# a C++ GEMM template's kernel takes the uint8 activations and int8 weights as its first arguments
_TEMPLATE = re.compile(r"void\s+(\w+)\(\s*const uint8_t\* X,\s*const int8_t\* W")


def template_kernels(package: Path) -> set[str]:
    """The names of the INT8 GEMM template kernels in an AOTInductor package."""
    names: set[str] = set()
    with zipfile.ZipFile(package) as archive:
        for name in archive.namelist():
            if name.endswith(".cpp"):
                names |= set(_TEMPLATE.findall(archive.read(name).decode(errors="ignore")))
    return names


def kind_of(event: str, templates: set[str]) -> str:
    """The kernel kind an event of the profiled package belongs to."""
    kernel = event.removeprefix("graph_0_")
    if "qlinear" in event:
        return "INT8 linear (oneDNN qlinear)"
    if kernel in templates:
        return "INT8 GEMM template (Inductor C++)"
    if "scaled_dot_product" in event:
        return "attention core (SDPA)"
    if kernel.startswith("cpp_fused"):
        return "fused elementwise (Inductor C++)"
    return "other"


def op_times(folder: Path, batch: int, sequence: int, runs: int = 10, settings: dict | None = None) -> dict:
    """Milliseconds per call in each kernel kind of `folder`'s program compiled with `settings` (the
    stage's {"autotune", "fuse_post_ops"}; the fused oneDNN package when None), at batch x sequence."""
    import numpy as np
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (the Q/DQ ops the program calls)
    from torch.profiler import profile

    from compress.quantization import inductor

    settings = settings or {"autotune": False, "fuse_post_ops": True}
    names = json.loads((folder / "program.json").read_text())["inputs"]
    program = torch.export.load(folder / "model.pt2")
    configs = inductor.configs(**settings) | {"cpp.enable_kernel_profile": True}
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "profiled.pt2"
        inductor.compile_package(program, package, configs)
        templates = template_kernels(package)
        run = inductor.load_package(package)
        ids = torch.from_numpy(np.random.default_rng(0).integers(1000, 30000, (batch, sequence)))
        feed = {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids),
        }
        args = [feed[n] for n in names]
        with torch.no_grad():
            for _ in range(3):
                run(*args)
            with profile() as prof:
                started = time.perf_counter()
                for _ in range(runs):
                    run(*args)
                wall_ms = (time.perf_counter() - started) * 1000 / runs
    per_kind: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("graph_0_") or event.key.startswith("aoti_torch_"):
            per_kind[kind_of(event.key, templates)] += event.self_cpu_time_total / 1000 / runs
    # what no record covers (the wrapper's own work, or kernels the profiler missed) is kept as its own
    # kind, so a share is never of an incomplete total
    per_kind[UNRECORDED] = max(0.0, wall_ms - sum(per_kind.values()))
    return {k: round(ms, 3) for k, ms in sorted(per_kind.items(), key=lambda kv: -kv[1])}


def gemm_share(times: dict[str, float]) -> float:
    """The INT8 GEMM kernels' fraction of the package's time per call."""
    return share_of(times, INT8_GEMM_KINDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.torch_profile")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sequence", type=int, default=64)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--plain", action="store_true", help="compile without autotune or post-op fusion")
    parser.add_argument("--json", action="store_true", help="print the profile as one JSON line only")
    args = parser.parse_args(argv)
    settings = {"autotune": False, "fuse_post_ops": False} if args.plain else None
    times = op_times(args.folder, args.batch, args.sequence, args.runs, settings)
    if args.json:
        print(json.dumps(times))
        return 0
    print_profile(times, "kernel kind", args.batch, args.sequence)
    print(f"\nINT8 GEMM kernels: {gemm_share(times):.1%} of the time per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
