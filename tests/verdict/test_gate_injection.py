"""Does the gate catch what it should? Inject graded degradation into a fine-tuned model's answers,
measure the true drop on a large pool, and judge each level on a GLUE-sized evaluation sample.

The "model" is a pool of 200,000 rows answered right 90% of the time (a fine-tuned classifier's
accuracy on SST-2); degradation level L turns L% of the pool's rows from right to wrong, plus as many
again from wrong to right and back (churn that moves labels without moving accuracy).
"""

import numpy as np
import pytest

from compress.verdict import gates, stats

POOL, SAMPLE, BUDGET = 200_000, 872, 1.0
LEVELS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0]  # injected drop, points


def degrade(labels, reference, level, rng):
    right = np.flatnonzero(reference == labels)
    wrong = np.flatnonzero(reference != labels)
    n = int(round(level / 100 * len(labels)))
    churn = n // 2
    to_wrong = rng.choice(right, n + churn, replace=False)
    to_right = rng.choice(wrong, churn, replace=False)
    candidate = reference.copy()
    candidate[to_wrong] = 1 - candidate[to_wrong]
    candidate[to_right] = 1 - candidate[to_right]
    return candidate


def judge_levels(decision: str) -> list[dict]:
    rng = np.random.default_rng(2026)
    labels = rng.integers(0, 2, POOL)
    reference = np.where(rng.random(POOL) < 0.9, labels, 1 - labels)
    out = []
    for level in LEVELS:
        candidate = degrade(labels, reference, level, rng)
        true_drop = ((reference == labels).mean() - (candidate == labels).mean()) * 100
        rows = rng.choice(POOL, SAMPLE, replace=False)
        paired = stats.paired_drop(labels[rows], reference[rows], candidate[rows], stats.Bootstrap(seed=0))
        base = float((reference[rows] == labels[rows]).mean())
        cand = float((candidate[rows] == labels[rows]).mean())
        result = gates.accuracy_gate(
            base, cand, BUDGET, "accuracy", interval=(paired.low, paired.high), decision=decision
        )
        out.append(
            {
                "level": level,
                "true_drop": true_drop,
                "should_pass": true_drop <= BUDGET + 1e-9,
                "passed": result.passed,
                "within_noise": result.within_noise,
                "drop": paired.drop,
                "interval": (paired.low, paired.high),
            }
        )
    return out


def show(decision, levels):
    print(f"\ndecision = {decision}: {len(levels)} graded levels, budget {BUDGET} pt, {SAMPLE}-row sample")
    for r in levels:
        verdict = "pass" if r["passed"] else "fail"
        wrong = "" if r["passed"] == r["should_pass"] else "  <- wrong verdict"
        print(
            f"  true drop {r['true_drop']:5.2f}  measured {r['drop']:+5.2f} "
            f"[{r['interval'][0]:+5.2f}, {r['interval'][1]:+5.2f}]  {verdict}"
            f"{'  (within noise)' if r['within_noise'] else ''}{wrong}"
        )


def test_upper_policy_never_passes_a_breach_and_only_fails_within_noise():
    levels = judge_levels("upper")
    show("upper", levels)
    false_passes = [r for r in levels if r["passed"] and not r["should_pass"]]
    false_fails = [r for r in levels if not r["passed"] and r["should_pass"]]
    assert false_passes == []
    assert all(r["within_noise"] for r in false_fails)
    assert any(r["passed"] for r in levels) and any(not r["passed"] for r in levels)


def test_point_policy_flags_every_wrong_verdict_as_within_noise():
    levels = judge_levels("point")
    show("point", levels)
    wrong = [r for r in levels if r["passed"] != r["should_pass"]]
    assert all(r["within_noise"] for r in wrong)
    clear = [r for r in levels if abs(r["true_drop"] - BUDGET) >= 2.0]
    assert clear and all(r["passed"] == r["should_pass"] for r in clear)


@pytest.mark.parametrize("decision", ["point", "upper"])
def test_far_levels_are_decided(decision):
    by_level = {r["level"]: r for r in judge_levels(decision)}
    assert by_level[0.0]["passed"] and not by_level[0.0]["within_noise"]
    assert not by_level[5.0]["passed"] and not by_level[5.0]["within_noise"]
