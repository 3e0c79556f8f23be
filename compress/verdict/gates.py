"""The gates: pure functions from measured figures and budgets to pass/fail. This is the product.

Drops are in absolute points (0.88 -> 0.87 is a drop of 1.0). A negative drop is an improvement.
Nothing here reads files or prints; the judge feeds figures in and records what comes out.
"""

from __future__ import annotations

from typing import Literal

from compress.core.records import Gate

# Measured figures are rounded before comparison, so 0.1 + 0.2 style float noise cannot flip a tie.
DECIMALS = 9


def gate(
    name: str,
    passed: bool,
    value: float | None,
    limit: float | None,
    message: str,
    within_noise: bool = False,
) -> Gate:
    """A gate record; positional, as every gate function below builds one."""
    return Gate(
        gate=name, passed=passed, value=value, limit=limit, message=message, within_noise=within_noise
    )


def accuracy_drop_points(baseline: float, metric: float) -> float:
    """baseline - metric, in points (metrics are fractions in [0, 1])."""
    return round((baseline - metric) * 100, DECIMALS)


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
) -> Gate:
    """Drop against budget. With an `interval` (the drop's confidence interval, points):
    decision "point" judges the point drop and flags a verdict the interval straddles as within
    noise; decision "upper" passes only if the interval's upper bound is within budget."""
    drop = accuracy_drop_points(baseline, metric)
    budget = round(max_drop_points, DECIMALS)
    point_ok = drop <= budget
    text = f"{name} {metric:.4f} vs baseline {baseline:.4f}: drop {drop:+.2f} pt"
    if interval is None:
        passed, within_noise = point_ok, False
    else:
        low, high = round(interval[0], DECIMALS), round(interval[1], DECIMALS)
        within_noise = low <= budget < high
        passed = point_ok if decision == "point" else high <= budget
        text += f" ({confidence:.0%} CI {low:+.2f} to {high:+.2f})"
    how = "within" if passed else "exceeds"
    text += f" {how} budget {max_drop_points:.2f} pt"
    if not point_ok:
        text += f" (over by {drop - max_drop_points:.2f} pt)"
    elif not passed and interval is not None:  # decision "upper" with a point drop under budget
        text += f": the {confidence:.0%} upper bound {interval[1]:+.2f} pt is over it (decision = upper)"
    if within_noise:
        more = f"; about {rows_needed} rows would decide it" if rows_needed else ""
        text += f" — within the noise of this evaluation set{more}"
    return gate("accuracy", passed, drop, max_drop_points, text, within_noise)


def agreement_gate(disagreements: int, rows: int, max_disagreement: float) -> Gate:
    """Share of rows whose predicted label differs from the FP32 reference, against its budget."""
    if rows == 0:
        return gate("agreement", False, None, max_disagreement, "no rows to compare labels on")
    share = disagreements / rows
    passed = round(share, DECIMALS) <= round(max_disagreement, DECIMALS)
    return gate(
        "agreement",
        passed,
        round(share, 6),
        max_disagreement,
        f"{disagreements} of {rows} rows ({share:.2%}) changed label vs the FP32 reference: "
        f"{'within' if passed else 'exceeds'} max_disagreement {max_disagreement:.2%}",
    )


def upper_bound_gate(name: str, value: float, limit: float, unit: str) -> Gate:
    """A figure that must not exceed its budget (latency, size)."""
    passed = round(value, DECIMALS) <= round(limit, DECIMALS)
    how = "within" if passed else "exceeds"
    over = "" if passed else f" (over by {value - limit:.2f} {unit}, {value / limit:.2f}x)"
    return gate(
        name, passed, value, limit, f"{name} {value:.2f} {unit} {how} budget {limit:.2f} {unit}{over}"
    )


def stage_failed(stage: str, reason: str) -> Gate:
    """The artifact exists but the stage that made it missed its own check: best effort, not a pass."""
    return gate("stage", False, None, None, f"best-effort artifact: stage '{stage}' failed: {reason}")


def release_matrix_gate(problems: list[str] | tuple[str, ...], shapes: int) -> Gate:
    """The artifact must run and answer like its FP32 reference at every release shape."""
    if not problems:
        return gate("shapes", True, 0, 0, f"all {shapes} release-matrix shapes run and agree")
    return gate(
        "shapes",
        False,
        len(problems),
        0,
        f"{len(problems)} of {shapes} release-matrix shapes fail: "
        + "; ".join(problems[:4])
        + (" ..." if len(problems) > 4 else ""),
    )


def proxy_gate(reason: str, allow_proxy: bool) -> Gate:
    """A target whose artifact could not be built here (no engine without a GPU) and was measured
    on a stand-in. Passes only when the recipe allows the proxy; the verdict then says "proxy"."""
    if allow_proxy:
        return gate(
            "built", True, None, None, f"not-built: {reason}; gated on the CPU proxy (allow_proxy = true)"
        )
    return gate("built", False, None, None, f"not-built: {reason} (set allow_proxy = true to accept a proxy)")


def not_built(reason: str) -> Gate:
    """The target has no artifact at all."""
    return gate("built", False, None, None, f"not built: {reason}")


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
) -> list[Gate]:
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
                gate("agreement", False, None, max_disagreement, "no FP32 reference predictions to compare")
            )
        else:
            results.append(agreement_gate(disagreements[0], disagreements[1], max_disagreement))
    if max_latency_ms is not None:
        if latency_ms is None:
            results.append(gate("latency", False, None, max_latency_ms, "latency not measured"))
        else:
            results.append(upper_bound_gate("latency", latency_ms, max_latency_ms, "ms"))
    if max_size_mb is not None:
        results.append(upper_bound_gate("size", size_mb, max_size_mb, "MB"))
    return results


def target_verdict(
    results: list[Gate] | tuple[Gate, ...], proxy: bool = False
) -> Literal["pass", "fail", "proxy"]:
    """pass | fail | proxy (every gate passed, but on a stand-in for the real artifact). The one
    verdict rule: regression gates are gates like any other."""
    if not (results and all(r.passed for r in results)):
        return "fail"
    return "proxy" if proxy else "pass"


def overall_verdict(targets: list[tuple[bool, str]], failed_stages: int = 0) -> Literal["pass", "fail"]:
    """(required, verdict) per target -> run verdict: fail if a required target or any stage failed."""
    if failed_stages:
        return "fail"
    return "fail" if any(required and v == "fail" for required, v in targets) else "pass"
