"""AOTInductor packages of an INT8 torch.export program: the one module that drives Inductor.

Inductor freezes (folds the weights' quantize ops into int8 constants and lowers dequant-matmul-quant to
oneDNN's INT8 linear, `qlinear_pointwise`) only with grad off. Built with grad on, the same call made a
package that simulates Q/DQ in FP32: for pruned MiniLM 72 MB and 9.8 ms at 1x128, against 57 MB and
4.7 ms under no_grad.

Post-op fusion. Freezing also folds what follows an INT8 linear into it (GELU as a unary post-op, the
residual add as a binary one), but its patterns want the linear's output to have no other users. A
program from torch.export reads the batch and sequence sizes off intermediate tensors (`sym_size` of a
linear's output, for the next reshape), an extra user that silently stops every one of those fusions in
AOTInductor (a JIT `torch.compile` of the same program, whose sizes are graph inputs, fuses them).
`SizesFromInputs` re-points each such size at the graph input that has the same symbol; the values are
unchanged. Unpruned MiniLM: 6.5 -> 5.6 ms at 1x128, 49.2 -> 40.5 ms at 32x64; pruned 4.7 -> 4.1 and
31.9 -> 25.7 ms.

With `max_autotune` (Inductor's C++ INT8 GEMM templates timed against oneDNN per layer), torch 2.13
computes wrong results once fused post-ops reach its templates under dynamic shapes: unpruned MiniLM's
package with both kept 51% of the program's labels on 256 SST-2 test rows (an earlier run of the same
benchmark: 51% with GELU alone fused); a JIT `torch.compile(dynamic=True)` with max_autotune, without
this module's pass, was as wrong on random inputs (a scratch check). So a package is autotuned or fused,
never both: `build_fastest` compiles each asked-for setting, drops any whose labels leave the
program's, and serves the fastest.

Figures: `python -m benchmarks.torch_int8_compile RECIPE` on the two MiniLM torch-int8 recipes,
2026-11-30, this project's 2-core Xeon (AMX).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch._inductor.custom_graph_pass import CustomGraphPass


class SizesFromInputs(CustomGraphPass):
    """Inductor graph pass (before freezing): every `aten.sym_size.int` whose value is a dynamic input
    dimension reads it from that input instead of from an intermediate tensor."""

    def __call__(self, graph: torch.fx.Graph) -> None:
        inputs: dict[Any, tuple[torch.fx.Node, int]] = {}
        for node in graph.find_nodes(op="placeholder"):
            value = node.meta.get("val")
            if isinstance(value, torch.Tensor):
                for dim, size in enumerate(value.shape):
                    if isinstance(size, torch.SymInt):
                        inputs.setdefault(size.node.expr, (node, dim))
        for node in graph.find_nodes(op="call_function", target=torch.ops.aten.sym_size.int):
            value = node.meta.get("val")
            if isinstance(value, torch.SymInt) and value.node.expr in inputs:
                node.args = inputs[value.node.expr]

    def uuid(self) -> str:
        """Inductor's cache key for the pass."""
        return "compress.SizesFromInputs.v1"


PLAIN = {"autotune": False, "fuse_post_ops": False}  # Inductor's own lowering: the last resort


def settings_to_try(*, autotune: bool, fuse_post_ops: bool) -> list[dict[str, bool]]:
    """The packages a stage compiles and races: the autotuned GEMM templates, the oneDNN linears with
    fused post-ops, never both in one package (wrong results: the module docstring); Inductor's plain
    lowering where neither is asked for."""
    out = []
    if autotune:
        out.append({"autotune": True, "fuse_post_ops": False})
    if fuse_post_ops:
        out.append({"autotune": False, "fuse_post_ops": True})
    return out or [dict(PLAIN)]


def configs(*, autotune: bool, fuse_post_ops: bool) -> dict[str, Any]:
    """Inductor configs for an INT8 package (why each: the module docstring)."""
    out: dict[str, Any] = {"freezing": True}
    if fuse_post_ops:
        out["joint_custom_pre_pass"] = SizesFromInputs()
    if autotune:
        out |= {"max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"}
    return out


def build_fastest(
    program: torch.export.ExportedProgram,
    path: Path,
    settings: list[dict[str, bool]],
    *,
    agreement: Callable[[Callable], float],
    latencies: Callable[[list[Callable]], list[dict[str, float]]],
    min_agreement: float,
) -> tuple[list[dict], dict | None]:
    """Compile a package per setting, keep those whose `agreement(package)` with the program reaches
    `min_agreement`, time the kept ones together (`latencies(packages)`: ms per shape for each) and move
    the fastest (geometric mean over the shapes) to `path`. Where none agrees, Inductor's plain lowering
    is tried last. Returns every candidate's row and the chosen one (None: none agreed). Compile errors
    (no C++ compiler, an op Inductor cannot lower) propagate."""
    rows: list[dict] = []
    kept: list[tuple[dict, Path, Callable]] = []
    queue = list(settings)
    while queue:
        setting = queue.pop(0)
        candidate = path.with_name(f"{path.stem}.candidate{len(rows)}.pt2")
        t0 = time.perf_counter()
        compile_package(program, candidate, configs(**setting))
        row: dict[str, Any] = {**setting, "compile_s": round(time.perf_counter() - t0, 2)}
        package = load_package(candidate)
        row["label_agreement_with_program"] = agreement(package)
        rows.append(row)
        if row["label_agreement_with_program"] >= min_agreement:
            kept.append((row, candidate, package))
        else:
            candidate.unlink()
        if not queue and not kept and PLAIN not in [{k: r[k] for k in PLAIN} for r in rows]:
            queue.append(dict(PLAIN))
    if not kept:
        return rows, None
    for (row, _, _), times in zip(kept, latencies([p for _, _, p in kept]), strict=True):
        row["latency_ms"] = times
    best = min(kept, key=lambda k: math.prod(k[0]["latency_ms"].values()))
    for row, candidate, _ in kept:
        row["served"] = candidate == best[1]
        if candidate != best[1]:
            candidate.unlink()
    best[1].replace(path)
    return rows, best[0]


def compile_package(
    program: torch.export.ExportedProgram, path: Path, inductor_configs: dict[str, Any]
) -> None:
    """AOTInductor's package of `program` at `path`, grad off; Inductor's autotune tables and notes are
    kept off the caller's output."""
    with (
        torch.no_grad(),
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs=inductor_configs
        )


def load_package(path: Path):
    """A compiled package as a callable (no compiler needed)."""
    return torch._inductor.aoti_load_package(str(path))


# the signature of a C++ GEMM template Inductor generated for uint8 activations x int8 weights
_U8S8_TEMPLATE = re.compile(
    r"void (\w*micro_gemm)\(\s*(?:AMXState& amx_state,\s*)?const uint8_t\* __restrict__ A,"
    r"\s*const int8_t\* __restrict__ B"
)
_QLINEAR_CALL = re.compile(r"qlinear_pointwise(\w*)\((.*)")  # a call in the generated wrapper


def int8_gemm_kernels(package: Path) -> dict[str, int]:
    """What runs the package's INT8 linear layers: calls of oneDNN's quantized linear in the generated
    wrapper (and how many carry a fused GELU or residual add), and the u8s8 GEMM templates Inductor
    generated (max_autotune). All 0 means Inductor did not lower the Q/DQ pattern: the model runs as
    simulated FP32."""
    qlinear = gelu = binary = templates = 0
    with zipfile.ZipFile(package) as archive:
        for name in archive.namelist():
            if name.endswith(".cpp"):
                code = archive.read(name).decode(errors="ignore")
                if name.endswith("wrapper.cpp"):
                    calls = _QLINEAR_CALL.findall(code)
                    qlinear += len(calls)
                    gelu += sum('"gelu"' in args for _, args in calls)
                    binary += sum("binary" in kind for kind, _ in calls)
                templates += len(set(_U8S8_TEMPLATE.findall(code)))
    return {
        "onednn_qlinear_calls": qlinear,
        "with_gelu": gelu,
        "with_residual_add": binary,
        "cpp_u8s8_gemm_templates": templates,
    }
