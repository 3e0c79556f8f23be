"""Does the gate catch what it should? Inject graded degradation into a fine-tuned model's answers,
measure the true drop on a large pool, and judge each level on GLUE-sized evaluation samples. The
evidence on real weights is benchmarks/verdict_truth.py; this fast synthetic version stays here.

The "model" is a pool of 200,000 rows answered right 90% of the time (a fine-tuned classifier's
accuracy on SST-2); degradation level L turns L% of the pool's rows from right to wrong, plus as many
again from wrong to right and back (churn that moves labels without moving accuracy).
"""

import numpy as np

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


def judge_levels(on_inconclusive: str = "fail", seeds: int = 5) -> list[dict]:
    """Every level judged on `seeds` samples of 872 rows: outcome, and whether it lets the run pass."""
    rng = np.random.default_rng(2026)
    labels = rng.integers(0, 2, POOL)
    reference = np.where(rng.random(POOL) < 0.9, labels, 1 - labels)
    out = []
    for level in LEVELS:
        candidate = degrade(labels, reference, level, rng)
        true_drop = ((reference == labels).mean() - (candidate == labels).mean()) * 100
        for seed in range(seeds):
            rows = rng.choice(POOL, SAMPLE, replace=False)
            paired = stats.paired_drop(
                labels[rows], reference[rows], candidate[rows], stats.Bootstrap(seed=seed)
            )
            base = float((reference[rows] == labels[rows]).mean())
            cand = float((candidate[rows] == labels[rows]).mean())
            result = gates.accuracy_gate(
                base,
                cand,
                BUDGET,
                "accuracy",
                interval=(paired.low, paired.high),
                on_inconclusive=on_inconclusive,
            )
            out.append(
                {"level": level, "true_drop": true_drop, "outcome": result.result, "passed": result.passed}
            )
    return out


def show(levels):
    print(f"\n{len(levels)} judged samples, budget {BUDGET} pt, {SAMPLE}-row samples")
    for level in LEVELS:
        rows = [r for r in levels if r["level"] == level]
        counts = {o: sum(r["outcome"] == o for r in rows) for o in ("pass", "fail", "inconclusive")}
        print(f"  true drop {rows[0]['true_drop']:5.2f}: {counts}")


def test_a_breach_never_passes_and_a_small_drop_never_fails_conclusively():
    """The synthetic counterpart of benchmarks/verdict_truth.py (which uses real weights)."""
    levels = judge_levels()
    show(levels)
    over = [r for r in levels if r["true_drop"] > BUDGET]
    small = [r for r in levels if r["true_drop"] < BUDGET / 2]
    assert over and not any(r["passed"] for r in over)  # no false pass, inconclusive included
    assert small and not any(r["outcome"] == "fail" for r in small)  # no conclusive false fail
    assert any(r["outcome"] == "inconclusive" for r in levels)  # the middle is honestly unsure


def test_far_levels_are_decided():
    """No change always passes; five times the budget never passes and mostly fails outright (one
    872-row sample in five can measure a 5-point loss as 2: the interval then straddles the budget)."""
    levels = judge_levels()
    assert all(r["outcome"] == "pass" for r in levels if r["level"] == 0.0)
    five = [r["outcome"] for r in levels if r["level"] == 5.0]
    assert "pass" not in five and five.count("fail") >= 3


def test_on_inconclusive_pass_lets_only_inconclusive_gates_through():
    strict, lenient = judge_levels("fail", seeds=2), judge_levels("pass", seeds=2)
    for a, b in zip(strict, lenient, strict=True):
        assert a["outcome"] == b["outcome"]
        assert b["passed"] == (a["outcome"] != "fail")
