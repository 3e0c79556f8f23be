"""The gates: pure functions from measured figures and budgets to pass/fail. This is the product.

Drops are in absolute points (0.88 -> 0.87 is a drop of 1.0). A negative drop is an improvement.
Nothing here reads files or prints; the judge feeds figures in and records what comes out.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

from compress.core.records import Gate, Outcome

# Measured figures are rounded before comparison, so 0.1 + 0.2 style float noise cannot flip a tie.
DECIMALS = 9


def gate(
    name: str,
    passed: bool,
    value: float | None,
    limit: float | None,
    message: str,
    within_noise: bool = False,
    *,
    outcome: Outcome | None = None,
    rows: int | None = None,
) -> Gate:
    """A gate record; positional, as every gate function below builds one. `outcome` defaults to
    pass or fail from `passed`."""
    return Gate(
        gate=name,
        passed=passed,
        value=value,
        limit=limit,
        message=message,
        within_noise=within_noise,
        outcome=outcome or ("pass" if passed else "fail"),
        rows=rows,
    )


def accuracy_drop_points(baseline: float, metric: float) -> float:
    """baseline - metric, in points (metrics are fractions in [0, 1])."""
    return round((baseline - metric) * 100, DECIMALS)


def percent(confidence: float) -> str:
    """A confidence as a reader expects it: 0.95 -> "95%", 0.99737 -> "99.74%"."""
    return f"{confidence * 100:.2f}".rstrip("0").rstrip(".") + "%"


def interval_outcome(low: float, high: float, limit: float) -> Outcome:
    """The three outcomes of an interval against an upper limit: all of it within (pass), all of
    it beyond (fail), or straddling it (inconclusive: these rows cannot tell)."""
    low, high, limit = round(low, DECIMALS), round(high, DECIMALS), round(limit, DECIMALS)
    if high <= limit:
        return "pass"
    if low > limit:
        return "fail"
    return "inconclusive"


def accuracy_gate(
    baseline: float,
    metric: float,
    max_drop_points: float,
    name: str,
    *,
    interval: tuple[float, float] | None = None,
    confidence: float = 0.95,
    rows_needed: int | None = None,
    on_inconclusive: str = "fail",
    rows: int | None = None,
    pooled_drop: float | None = None,
) -> Gate:
    """Drop against budget. With an `interval` (the drop's confidence interval, points) the gate
    passes when the whole interval is within budget, fails when it is all beyond, and is
    inconclusive when it straddles the budget: then `on_inconclusive` ("fail" | "pass") decides
    whether it lets the run pass. Without an interval (a stage's own budget) the point drop decides.
    `pooled_drop`: the drop on the test rows plus the pool rows an inconclusive gate drew (what the
    interval is of, and the gate's value)."""
    drop = accuracy_drop_points(baseline, metric)
    text = f"{name} {metric:.4f} vs baseline {baseline:.4f}: drop {drop:+.2f} pt"
    if pooled_drop is not None:
        text += f"; with pool rows {pooled_drop:+.2f} pt"
        drop = round(pooled_drop, DECIMALS)
    if interval is None:
        outcome: Outcome = "pass" if drop <= round(max_drop_points, DECIMALS) else "fail"
    else:
        outcome = interval_outcome(interval[0], interval[1], max_drop_points)
        text += f" ({percent(confidence)} CI {interval[0]:+.2f} to {interval[1]:+.2f}" + (
            f", {rows} rows)" if rows else ")"
        )
    if outcome == "pass":
        text += f" within budget {max_drop_points:.2f} pt"
    elif outcome == "fail":
        text += f" exceeds budget {max_drop_points:.2f} pt (over by {drop - max_drop_points:.2f} pt)"
    else:
        more = f"; about {rows_needed} rows would decide it" if rows_needed else ""
        text += (
            f" INCONCLUSIVE against budget {max_drop_points:.2f} pt: the interval straddles it, within the "
            f"noise of these rows{more}; on_inconclusive = {on_inconclusive}"
        )
    passed = outcome == "pass" or (outcome == "inconclusive" and on_inconclusive == "pass")
    return gate(
        "accuracy", passed, drop, max_drop_points, text, outcome == "inconclusive", outcome=outcome, rows=rows
    )


def agreement_gate(
    disagreements: int,
    rows: int,
    max_disagreement: float,
    *,
    confidence: float = 0.95,
    on_inconclusive: str = "fail",
) -> Gate:
    """Share of rows whose predicted label differs from the FP32 reference, against its budget:
    pass / fail / inconclusive by the share's Wilson interval, as the accuracy gate."""
    if rows == 0:
        return gate("agreement", False, None, max_disagreement, "no rows to compare labels on")
    share = disagreements / rows
    low, high = wilson_interval(disagreements, rows, confidence)
    outcome = interval_outcome(low, high, max_disagreement)
    interval = f"{percent(confidence)} CI {low:.2%} to {high:.2%}"
    text = f"{disagreements} of {rows} rows ({share:.2%}; {interval}) changed label vs the FP32 reference: "
    limit = f"max_disagreement {max_disagreement:.2%}"
    text += {
        "pass": f"within {limit}",
        "fail": f"exceeds {limit}",
        "inconclusive": f"INCONCLUSIVE against {limit} (the interval straddles it); on_inconclusive = "
        + on_inconclusive,
    }[outcome]
    passed = outcome == "pass" or (outcome == "inconclusive" and on_inconclusive == "pass")
    return gate(
        "agreement",
        passed,
        round(share, 6),
        max_disagreement,
        text,
        outcome == "inconclusive",
        outcome=outcome,
        rows=rows,
    )


def wilson_interval(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (sound at 0 and n, where the normal one is not)."""
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


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
    confidence: float = 0.95,
    rows_needed: int | None = None,
    disagreements: tuple[int, int] | None = None,
    max_disagreement: float | None = None,
    on_inconclusive: str = "fail",
    rows: int | None = None,
    pooled_drop: float | None = None,
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
            confidence=confidence,
            rows_needed=rows_needed,
            on_inconclusive=on_inconclusive,
            rows=rows,
            pooled_drop=pooled_drop,
        )
    ]
    if max_disagreement is not None:
        if disagreements is None:
            results.append(
                gate("agreement", False, None, max_disagreement, "no FP32 reference predictions to compare")
            )
        else:
            results.append(
                agreement_gate(
                    disagreements[0],
                    disagreements[1],
                    max_disagreement,
                    confidence=confidence,
                    on_inconclusive=on_inconclusive,
                )
            )
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
) -> Literal["pass", "fail", "proxy", "inconclusive"]:
    """fail (a gate failed, or there is none) | inconclusive (none failed, one could not tell) |
    proxy (every gate passed, on a stand-in for the real artifact) | pass. The one verdict rule:
    regression gates are gates like any other."""
    if not results or any(r.result == "fail" for r in results):
        return "fail"
    if any(r.result == "inconclusive" for r in results):
        return "inconclusive"
    return "proxy" if proxy else "pass"


def overall_verdict(
    targets: list[tuple[bool, list[Gate] | tuple[Gate, ...]]], failed_stages: int = 0
) -> Literal["pass", "fail"]:
    """(required, gates) per target -> run verdict: fail if any stage failed, or a required target
    has a gate that does not let the run pass (a failure, or an inconclusive gate under
    on_inconclusive = "fail")."""
    if failed_stages:
        return "fail"
    return (
        "fail"
        if any(required and not (gates and all(g.passed for g in gates)) for required, gates in targets)
        else "pass"
    )
