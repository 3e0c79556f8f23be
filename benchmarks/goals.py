"""The INT8 goals `make bench` reports as MET / NOT MET, judged from one run's rows and paired speedups.

Pure functions of the measured result (no timing here), so each rule is table-tested. A speedup is the
paired ratio (reference time / candidate time, the two alternating call by call) at both speed shapes;
a goal over "the fastest" artifact takes the one whose slower shape is fastest, so a model that wins
at 1x128 and loses at 32x64 cannot stand in for one that wins at both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SPEED_SHAPES = ("1x128", "32x64")
FASTEST_VS_OPTIMUM = 2.0  # the fastest artifact within budget, against Optimum's dynamic INT8
UNPRUNED_VS_OPTIMUM = 1.15  # an unpruned INT8 target, against Optimum's dynamic INT8
WITHIN_FLOOR = 2.0  # an INT8 graph's time at 32x64 against its multiply-accumulates at the GEMM rate


@dataclass
class Measured:
    """What the goals read of one benchmark row."""

    name: str
    family: str  # "pytorch" | "optimum" | "compress"
    runtime: str
    precision: str
    accuracy: float
    drop_points: float  # against PyTorch FP32 eager, on the test rows
    pruned: bool = False
    gate: str | None = None  # the target's verdict in its recipe's run
    recipe_verdict: str | None = None
    extra: dict = field(default_factory=dict)  # profile, floor, trials: whatever the row measured


def _speedups(pairs: dict, candidate: str, reference: str) -> dict[str, float] | None:
    by_shape = pairs.get(f"{candidate} vs {reference}")
    if by_shape is None:
        return None
    return {shape: by_shape[shape]["speedup"] for shape in SPEED_SHAPES}


def _ratios(speedups: dict[str, float]) -> str:
    return ", ".join(f"{speedups[s]:.2f}x at {s}" for s in SPEED_SHAPES)


def _outcome(goal: str, met: bool | None, measured: str, **details) -> dict:
    status = "NOT MEASURED" if met is None else ("MET" if met else "NOT MET")
    return {"goal": goal, "status": status, "measured": measured, **details}


def fastest_against_optimum(rows: list[Measured], pairs: dict, optimum: str | None, budget: float) -> dict:
    goal = (
        f"the fastest compress artifact within {budget:g} pt of PyTorch FP32, from a recipe that passes, "
        f">= {FASTEST_VS_OPTIMUM:g}x Optimum's dynamic INT8 at 1x128 and 32x64"
    )
    eligible = [
        r for r in rows if r.family == "compress" and r.drop_points <= budget and r.recipe_verdict == "pass"
    ]
    timed = [(r, s) for r in eligible if optimum and (s := _speedups(pairs, r.name, optimum))]
    if not timed:
        why = "Optimum's INT8 did not run" if optimum is None else "no compress artifact within budget"
        return _outcome(goal, None, why)
    best, speedups = max(timed, key=lambda rs: min(rs[1].values()))
    met = min(speedups.values()) >= FASTEST_VS_OPTIMUM
    return _outcome(
        goal,
        met,
        f"{best.name} ({best.drop_points:+.2f} pt): {_ratios(speedups)}",
        artifact=best.name,
        speedups=speedups,
    )


def unpruned_int8_against_optimum(rows: list[Measured], pairs: dict, optimum: Measured | None) -> dict:
    goal = (
        f"an unpruned compress INT8 target >= {UNPRUNED_VS_OPTIMUM:g}x Optimum's INT8 at 1x128 and 32x64, "
        "at least as accurate, its budget met on the test rows"
    )
    candidates = [r for r in rows if r.family == "compress" and r.precision == "int8" and not r.pruned]
    if optimum is None or not candidates:
        return _outcome(goal, None, "Optimum's INT8 did not run" if optimum is None else "no unpruned INT8")
    verdicts, any_met = [], False
    for r in candidates:
        speedups = _speedups(pairs, r.name, optimum.name)
        if speedups is None:
            continue
        misses = [f"{s} {speedups[s]:.2f}x" for s in SPEED_SHAPES if speedups[s] < UNPRUNED_VS_OPTIMUM]
        if r.accuracy < optimum.accuracy:
            misses.append(f"accuracy {r.accuracy:.4f} < Optimum's {optimum.accuracy:.4f}")
        if r.gate != "pass":
            misses.append(f"its gate: {r.gate}")
        any_met = any_met or not misses
        verdicts.append(
            f"{r.name}: {_ratios(speedups)}, accuracy {r.accuracy:.4f} vs {optimum.accuracy:.4f}, "
            f"gate {r.gate}" + (f" — misses {'; '.join(misses)}" if misses else " — meets it")
        )
    if not verdicts:
        return _outcome(goal, None, "no paired timing")
    return _outcome(goal, any_met, " | ".join(verdicts))


def int8_graph_floor(rows: list[Measured]) -> dict:
    """The unpruned ONNX INT8 graph's GEMM share and its time against the floor at 32x64 decide; the other
    INT8 graphs (pruned, and the torch/int8 packages) are reported beside it."""
    goal = (
        f"the INT8 graph's GEMM share at 32x64, and its time within {WITHIN_FLOOR:g}x of the INT8 floor "
        "(benchmarks/gemm.py rates)"
    )
    graphs = [
        r
        for r in rows
        if r.family == "compress" and r.runtime in ("onnxruntime", "torch") and r.precision == "int8"
        if "times_floor_32x64" in r.extra
    ]
    # the unpruned ONNX graph first: it decides
    graphs.sort(key=lambda r: (r.runtime != "onnxruntime", r.pruned))
    if not graphs or graphs[0].runtime != "onnxruntime":
        return _outcome(goal, None, "no ONNX INT8 graph with a floor")
    parts = [
        f"{r.name}: INT8 GEMMs {r.extra.get('gemm_share_32x64', float('nan')):.0%} of "
        + ("its fused package's time" if r.runtime == "torch" else "kernel time")
        + f", {r.extra['times_floor_32x64']:.2f}x its floor ({r.extra['floor_32x64_ms']:.1f} ms)"
        + (
            f", {r.extra['times_gemm_floor_32x64']:.2f}x its linear layers as bare INT8 GEMMs"
            if "times_gemm_floor_32x64" in r.extra
            else ""
        )
        for r in graphs
    ]
    return _outcome(goal, graphs[0].extra["times_floor_32x64"] <= WITHIN_FLOOR, " | ".join(parts))


def torch_int8_target(rows: list[Measured], pairs: dict, eager: str) -> dict:
    goal = (
        "a torch/int8 target built by Neural Compressor's autotune, gated, its trial table in the "
        "manifest, faster than PyTorch FP32 eager at 1x128 and 32x64"
    )
    targets = [r for r in rows if r.family == "compress" and r.runtime == "torch" and r.precision == "int8"]
    if not targets:
        return _outcome(goal, None, "no torch/int8 target in the recipes")
    parts, any_met = [], False
    for r in targets:
        speedups = _speedups(pairs, r.name, eager)
        trials = r.extra.get("trials") or []
        met = bool(speedups and trials and r.gate == "pass" and min(speedups.values()) > 1.0)
        any_met = any_met or met
        speed = _ratios(speedups) if speedups else "not timed"
        parts.append(f"{r.name}: {len(trials)} trials, gate {r.gate}, vs eager {speed}")
    return _outcome(goal, any_met, " | ".join(parts))


def judge(
    rows: list[Measured], pairs: dict, *, eager: str, optimum: Measured | None, budget: float
) -> list[dict]:
    """Every goal, in the order the issue lists them."""
    return [
        fastest_against_optimum(rows, pairs, optimum.name if optimum else None, budget),
        unpruned_int8_against_optimum(rows, pairs, optimum),
        int8_graph_floor(rows),
        torch_int8_target(rows, pairs, eager),
    ]
