"""How sure a measured drop is: paired statistics on the rows both models were evaluated on.

On the 872-row SST-2 validation split one row is 0.11 points and a single accuracy has a standard
error near 1.2 points, more than a typical budget. Reference and candidate answer the same rows, and
most rows agree, so the drop is judged paired: a bootstrap over rows resamples both models together,
and McNemar's exact test looks only at the rows where they disagree. All functions are pure and seeded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compress.core.records import DropStatistics
from compress.verdict.gates import interval_outcome, wilson_interval
from compress.verdict.metrics import metric as metric_value


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant rows (binomial, p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(0, min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Bootstrap:
    """How an interval is computed: which metric, at what confidence, from how many seeded resamples."""

    metric: str = "accuracy"
    num_labels: int = 2
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0

    def metric_fn(self):
        """`fn(labels, predictions) -> metric` for this settings' metric."""
        return lambda labels, preds: metric_value(self.metric, labels, preds, self.num_labels)

    def draws(self) -> int:
        """Resamples: at least `resamples`, and enough that each tail of the interval holds 20 of
        them (a 99.75% interval, after a correction for several looks, needs 16,000)."""
        return max(self.resamples, math.ceil(40 / (1 - self.confidence)))

    def interval(self, samples: np.ndarray) -> tuple[float, float]:
        """The central `confidence` percentile interval of `samples`."""
        low, high = np.percentile(samples, [(1 - self.confidence) / 2 * 100, (1 + self.confidence) / 2 * 100])
        return float(low), float(high)

    def resampled(self, rows: int, statistic: Callable[[np.ndarray], float]) -> np.ndarray:
        """`statistic(index)` over seeded bootstrap resamples of `rows` rows, 100 at a time (a
        pool of 20,000 rows never holds more than 100 resamples in memory)."""
        if rows == 0:
            raise ValueError("no rows: a drop on an empty set is undefined")
        rng = np.random.default_rng(self.seed)
        out = []
        for start in range(0, self.draws(), 100):
            block = rng.integers(0, rows, size=(min(100, self.draws() - start), rows))
            out += [statistic(i) for i in block]
        return np.array(out)


def paired_drop(labels, reference, candidate, settings: Bootstrap = Bootstrap()) -> DropStatistics:
    """Paired bootstrap percentile interval of reference metric - candidate metric, in points.

    For accuracy the resampled drop depends only on how many rows of each kind a resample draws
    (reference right and candidate wrong, the reverse, or neither), so the bootstrap draws those
    counts from a multinomial: the same distribution as resampling rows, at any number of rows."""
    labels, reference, candidate = (np.asarray(a) for a in (labels, reference, candidate))
    if not (len(labels) == len(reference) == len(candidate)):
        raise ValueError("labels, reference and candidate must cover the same rows")
    if len(labels) == 0:
        raise ValueError("no rows: a drop on an empty set is undefined")
    fn = settings.metric_fn()
    drop = (fn(labels, reference) - fn(labels, candidate)) * 100
    n = len(labels)
    b = int(((reference == labels) & (candidate != labels)).sum())
    c = int(((reference != labels) & (candidate == labels)).sum())
    if settings.metric == "accuracy":
        counts = np.random.default_rng(settings.seed).multinomial(
            n, [b / n, c / n, (n - b - c) / n], settings.draws()
        )
        samples = (counts[:, 0] - counts[:, 1]) / n * 100
    else:
        samples = settings.resampled(
            n, lambda i: (fn(labels[i], reference[i]) - fn(labels[i], candidate[i])) * 100
        )
    low, high = settings.interval(samples)
    return DropStatistics(
        drop=round(float(drop), 6),
        low=round(low, 6),
        high=round(high, 6),
        confidence=settings.confidence,
        rows=n,
        disagreements=int((reference != candidate).sum()),
        reference_right_candidate_wrong=b,
        reference_wrong_candidate_right=c,
        mcnemar_p=round(mcnemar_exact_p(b, c), 6) if settings.metric == "accuracy" else None,
        paired=True,
    )


def unpaired_drop(baseline: float, labels, candidate, settings: Bootstrap = Bootstrap()) -> DropStatistics:
    """For a pinned baseline number: the interval comes from the candidate's own sampling error
    (for accuracy, a resample's right rows are binomial)."""
    labels, candidate = np.asarray(labels), np.asarray(candidate)
    if len(labels) == 0:
        raise ValueError("no rows: a drop on an empty set is undefined")
    fn = settings.metric_fn()
    n = len(labels)
    if settings.metric == "accuracy":
        right = int((candidate == labels).sum())
        metrics = np.random.default_rng(settings.seed).binomial(n, right / n, settings.draws()) / n
    else:
        metrics = settings.resampled(n, lambda i: fn(labels[i], candidate[i]))
    low_m, high_m = settings.interval(metrics)
    return DropStatistics(
        drop=round((baseline - fn(labels, candidate)) * 100, 6),
        low=round((baseline - high_m) * 100, 6),
        high=round((baseline - low_m) * 100, 6),
        confidence=settings.confidence,
        rows=n,
        disagreements=0,
        reference_right_candidate_wrong=0,
        reference_wrong_candidate_right=0,
        mcnemar_p=None,
        paired=False,
    )


def planned_looks(pool_rows: int, chunk: int) -> int:
    """How many times an inconclusive gate may look: the test rows, then each chunk of the pool."""
    return 1 + (math.ceil(pool_rows / chunk) if pool_rows and chunk else 0)


def corrected(confidence: float, looks: int) -> float:
    """The confidence each look is taken at so that the chance of any wrong conclusive verdict over
    all `looks` stays at most 1 - `confidence` (Bonferroni: simple, and valid whatever the looks
    share)."""
    return 1 - (1 - confidence) / looks


def sequential_drop(
    labels,
    reference,
    candidate,
    *,
    test_rows: int,
    chunk: int,
    budget: float,
    settings: Bootstrap,
    baseline: float | None = None,
) -> DropStatistics:
    """The drop on the test rows; while its interval straddles `budget`, again on the test rows plus
    the next `chunk` rows of the pool (the arrays hold test rows, then pool rows in a random order).
    `settings.confidence` is the per-look confidence (see `corrected`). With `baseline` (a pinned
    number) the interval is unpaired and `reference` unused. The statistics of the last look."""
    labels, reference, candidate = (np.asarray(a) for a in (labels, reference, candidate))
    total, n, looks = len(labels), test_rows, 0
    while True:
        looks += 1
        if baseline is None:
            result = paired_drop(labels[:n], reference[:n], candidate[:n], settings)
        else:
            result = unpaired_drop(baseline, labels[:n], candidate[:n], settings)
        if interval_outcome(result.low, result.high, budget) != "inconclusive" or n >= total:
            return result.model_copy(update={"pool_rows": n - test_rows, "looks": looks})
        n = min(total, n + chunk)


def rows_to_decide(rows: int, drop: float, low: float, high: float, budget: float) -> int | None:
    """Rows an evaluation set would need for the interval to clear the budget on one side, assuming
    the same drop and a half-width shrinking as 1/sqrt(rows). None when the drop sits on the budget."""
    margin = abs(budget - drop)
    if margin == 0:
        return None
    half = (high - low) / 2
    return max(rows, math.ceil(rows * (half / margin) ** 2))


def sequential_agreement(
    reference, candidate, *, test_rows: int, chunk: int, max_disagreement: float, confidence: float
) -> tuple[int, int, int]:
    """Changed labels on the test rows, then on each further pool chunk while the share's Wilson
    interval straddles `max_disagreement`: (changed rows, rows, looks) of the last look.
    `confidence` is the per-look confidence (see `corrected`)."""
    changed = np.asarray(reference) != np.asarray(candidate)
    total, n, looks = len(changed), test_rows, 0
    while True:
        looks += 1
        k = int(changed[:n].sum())
        low, high = wilson_interval(k, n, confidence)
        if interval_outcome(low, high, max_disagreement) != "inconclusive" or n >= total:
            return k, n, looks
        n = min(total, n + chunk)
