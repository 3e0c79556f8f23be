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
    gate: str  # built | stage | accuracy | agreement | latency | size | shapes | regression
    passed: bool
    value: float | None
    limit: float | None
    message: str
    within_noise: bool = False  # the budget lies inside the drop's confidence interval

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy_drop_points(baseline: float, metric: float) -> float:
    """baseline - metric, in points (metrics are fractions in [0, 1])."""
    return round((baseline - metric) * 100, _DECIMALS)


def accuracy_gate(
    baseline: float,
    metric: float,
    max_drop_points: float,
    name: str,
    *,
    interval: tuple[float, float] | None = None,
    decision: str = "point",
    confidence: float = 0.95,
    rows_needed: int | None = None,
) -> GateResult:
    """Drop against budget. With an `interval` (the drop's confidence interval, points):
    decision "point" judges the point drop and flags a verdict the interval straddles as within
    noise; decision "upper" passes only if the interval's upper bound is within budget."""
    drop = accuracy_drop_points(baseline, metric)
    budget = round(max_drop_points, _DECIMALS)
    point_ok = drop <= budget
    text = f"{name} {metric:.4f} vs baseline {baseline:.4f}: drop {drop:+.2f} pt"
    if interval is None:
        passed, within_noise = point_ok, False
    else:
        low, high = round(interval[0], _DECIMALS), round(interval[1], _DECIMALS)
        within_noise = low <= budget < high
        passed = point_ok if decision == "point" else high <= budget
        text += f" ({confidence:.0%} CI {low:+.2f} to {high:+.2f})"
    how = "within" if passed else "exceeds"
    text += f" {how} budget {max_drop_points:.2f} pt"
    if not point_ok:
        text += f" (over by {drop - max_drop_points:.2f} pt)"
    elif not passed:  # decision "upper" with a point drop under budget
        text += f": the {confidence:.0%} upper bound {interval[1]:+.2f} pt is over it (decision = upper)"
    if within_noise:
        more = f"; about {rows_needed} rows would decide it" if rows_needed else ""
        text += f" — within the noise of this evaluation set{more}"
    return GateResult("accuracy", passed, drop, max_drop_points, text, within_noise)


def agreement_gate(disagreements: int, rows: int, max_disagreement: float) -> GateResult:
    """Share of rows whose predicted label differs from the FP32 reference, against its budget."""
    if rows == 0:
        return GateResult("agreement", False, None, max_disagreement, "no rows to compare labels on")
    share = disagreements / rows
    passed = round(share, _DECIMALS) <= round(max_disagreement, _DECIMALS)
    return GateResult(
        "agreement",
        passed,
        round(share, 6),
        max_disagreement,
        f"{disagreements} of {rows} rows ({share:.2%}) changed label vs the FP32 reference: "
        f"{'within' if passed else 'exceeds'} max_disagreement {max_disagreement:.2%}",
    )


def upper_bound_gate(gate: str, value: float, limit: float, unit: str) -> GateResult:
    passed = round(value, _DECIMALS) <= round(limit, _DECIMALS)
    how = "within" if passed else "exceeds"
    over = "" if passed else f" (over by {value - limit:.2f} {unit}, {value / limit:.2f}x)"
    return GateResult(
        gate, passed, value, limit, f"{gate} {value:.2f} {unit} {how} budget {limit:.2f} {unit}{over}"
    )


def stage_failed(stage: str, reason: str) -> GateResult:
    """The artifact exists but the stage that made it missed its own check: best effort, not a pass."""
    return GateResult("stage", False, None, None, f"best-effort artifact: stage '{stage}' failed: {reason}")


def release_matrix_gate(problems: list[str], shapes: int) -> GateResult:
    """The artifact must run and answer like its FP32 reference at every release shape."""
    if not problems:
        return GateResult("shapes", True, 0, 0, f"all {shapes} release-matrix shapes run and agree")
    return GateResult(
        "shapes",
        False,
        len(problems),
        0,
        f"{len(problems)} of {shapes} release-matrix shapes fail: "
        + "; ".join(problems[:4])
        + (" ..." if len(problems) > 4 else ""),
    )


def proxy_gate(reason: str, allow_proxy: bool) -> GateResult:
    """A target whose artifact could not be built here (no engine without a GPU) and was measured
    on a stand-in. Passes only when the recipe allows the proxy; the verdict then says "proxy"."""
    if allow_proxy:
        return GateResult(
            "built", True, None, None, f"not-built: {reason}; gated on the CPU proxy (allow_proxy = true)"
        )
    return GateResult(
        "built", False, None, None, f"not-built: {reason} (set allow_proxy = true to accept a proxy)"
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
    interval: tuple[float, float] | None = None,
    decision: str = "point",
    confidence: float = 0.95,
    rows_needed: int | None = None,
    disagreements: tuple[int, int] | None = None,
    max_disagreement: float | None = None,
) -> list[GateResult]:
    """Every gate a target has: accuracy always; agreement, latency and size when budgeted.
    `disagreements` is (rows that changed label, rows compared)."""
    results = [
        accuracy_gate(
            baseline,
            metric,
            max_accuracy_drop,
            metric_name,
            interval=interval,
            decision=decision,
            confidence=confidence,
            rows_needed=rows_needed,
        )
    ]
    if max_disagreement is not None:
        if disagreements is None:
            results.append(
                GateResult(
                    "agreement", False, None, max_disagreement, "no FP32 reference predictions to compare"
                )
            )
        else:
            results.append(agreement_gate(disagreements[0], disagreements[1], max_disagreement))
    if max_latency_ms is not None:
        if latency_ms is None:
            results.append(GateResult("latency", False, None, max_latency_ms, "latency not measured"))
        else:
            results.append(upper_bound_gate("latency", latency_ms, max_latency_ms, "ms"))
    if max_size_mb is not None:
        results.append(upper_bound_gate("size", size_mb, max_size_mb, "MB"))
    return results


def target_verdict(results: list[GateResult], proxy: bool = False) -> str:
    """pass | fail | proxy (every gate passed, but on a stand-in for the real artifact)."""
    if not (results and all(r.passed for r in results)):
        return "fail"
    return "proxy" if proxy else "pass"


def overall_verdict(targets: list[tuple[bool, str]], failed_stages: int = 0) -> str:
    """(required, verdict) per target -> run verdict: fail if a required target or any stage failed."""
    if failed_stages:
        return "fail"
    return "fail" if any(required and v == "fail" for required, v in targets) else "pass"
