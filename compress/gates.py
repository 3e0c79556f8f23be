"""The verdict: pure functions from measured figures and budgets to pass/fail. This is the product.

Drops are in absolute points (0.88 -> 0.87 is a drop of 1.0). A negative drop is an improvement.
Nothing here reads files or prints; the runner feeds figures in and records what comes out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Measured figures are rounded before comparison, so 0.1 + 0.2 style float noise cannot flip a tie.
_DECIMALS = 9


@dataclass(frozen=True)
class GateResult:
    gate: str  # "built" | "accuracy" | "latency" | "size"
    passed: bool
    value: float | None
    limit: float | None
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy_drop_points(baseline: float, metric: float) -> float:
    """baseline - metric, in points (metrics are fractions in [0, 1])."""
    return round((baseline - metric) * 100, _DECIMALS)


def accuracy_gate(baseline: float, metric: float, max_drop_points: float, name: str) -> GateResult:
    drop = accuracy_drop_points(baseline, metric)
    passed = drop <= round(max_drop_points, _DECIMALS)
    how = "within" if passed else "exceeds"
    return GateResult(
        "accuracy",
        passed,
        drop,
        max_drop_points,
        f"{name} {metric:.4f} vs baseline {baseline:.4f}: drop {drop:+.2f} pt {how} "
        f"budget {max_drop_points:.2f} pt"
        + ("" if passed else f" (over by {drop - max_drop_points:.2f} pt)"),
    )


def upper_bound_gate(gate: str, value: float, limit: float, unit: str) -> GateResult:
    passed = round(value, _DECIMALS) <= round(limit, _DECIMALS)
    how = "within" if passed else "exceeds"
    over = "" if passed else f" (over by {value - limit:.2f} {unit}, {value / limit:.2f}x)"
    return GateResult(
        gate, passed, value, limit, f"{gate} {value:.2f} {unit} {how} budget {limit:.2f} {unit}{over}"
    )


def not_built(reason: str) -> GateResult:
    return GateResult("built", False, None, None, f"not built: {reason}")


def judge_target(
    *,
    metric_name: str,
    baseline: float,
    metric: float,
    max_accuracy_drop: float,
    latency_ms: float | None,
    max_latency_ms: float | None,
    size_mb: float,
    max_size_mb: float | None,
) -> list[GateResult]:
    """Every gate a target has: accuracy always, latency and size when budgeted."""
    results = [accuracy_gate(baseline, metric, max_accuracy_drop, metric_name)]
    if max_latency_ms is not None:
        if latency_ms is None:
            results.append(GateResult("latency", False, None, max_latency_ms, "latency not measured"))
        else:
            results.append(upper_bound_gate("latency", latency_ms, max_latency_ms, "ms"))
    if max_size_mb is not None:
        results.append(upper_bound_gate("size", size_mb, max_size_mb, "MB"))
    return results


def target_verdict(results: list[GateResult]) -> str:
    return "pass" if results and all(r.passed for r in results) else "fail"


def overall_verdict(targets: list[tuple[bool, str]], failed_stages: int = 0) -> str:
    """(required, verdict) per target -> run verdict: fail if a required target or any stage failed."""
    if failed_stages:
        return "fail"
    return "fail" if any(required and v != "pass" for required, v in targets) else "pass"
