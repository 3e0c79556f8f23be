"""How sure a measured drop is: paired statistics on the rows both models were evaluated on.

On the 872-row SST-2 validation split one row is 0.11 points and a single accuracy has a standard
error near 1.2 points, more than a typical budget. Reference and candidate answer the same rows, and
most rows agree, so the drop is judged paired: a bootstrap over rows resamples both models together,
and McNemar's exact test looks only at the rows where they disagree. All functions are pure and seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compress.core.records import DropStatistics
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

    def indices(self, rows: int) -> np.ndarray:
        """The resamples: `resamples` rows of row indices drawn with replacement, seeded."""
        if rows == 0:
            raise ValueError("no rows: a drop on an empty set is undefined")
        return np.random.default_rng(self.seed).integers(0, rows, size=(self.resamples, rows))

    def interval(self, samples: np.ndarray) -> tuple[float, float]:
        """The central `confidence` percentile interval of `samples`."""
        low, high = np.percentile(samples, [(1 - self.confidence) / 2 * 100, (1 + self.confidence) / 2 * 100])
        return float(low), float(high)


def paired_drop(labels, reference, candidate, settings: Bootstrap = Bootstrap()) -> DropStatistics:
    """Paired bootstrap percentile interval of reference metric - candidate metric, in points."""
    labels, reference, candidate = (np.asarray(a) for a in (labels, reference, candidate))
    if not (len(labels) == len(reference) == len(candidate)):
        raise ValueError("labels, reference and candidate must cover the same rows")
    idx = settings.indices(len(labels))
    fn = settings.metric_fn()
    drop = (fn(labels, reference) - fn(labels, candidate)) * 100
    if settings.metric == "accuracy":  # vectorised: per-row correctness, resampled together
        ref_right = (reference == labels).astype(np.float64)
        cand_right = (candidate == labels).astype(np.float64)
        samples = (ref_right[idx].mean(axis=1) - cand_right[idx].mean(axis=1)) * 100
    else:
        samples = np.array([(fn(labels[i], reference[i]) - fn(labels[i], candidate[i])) * 100 for i in idx])
    low, high = settings.interval(samples)
    b = int(((reference == labels) & (candidate != labels)).sum())
    c = int(((reference != labels) & (candidate == labels)).sum())
    return DropStatistics(
        drop=round(float(drop), 6),
        low=round(low, 6),
        high=round(high, 6),
        confidence=settings.confidence,
        rows=len(labels),
        disagreements=int((reference != candidate).sum()),
        reference_right_candidate_wrong=b,
        reference_wrong_candidate_right=c,
        mcnemar_p=round(mcnemar_exact_p(b, c), 6) if settings.metric == "accuracy" else None,
        paired=True,
    )


def unpaired_drop(baseline: float, labels, candidate, settings: Bootstrap = Bootstrap()) -> DropStatistics:
    """For a pinned baseline number: the interval comes from the candidate's own sampling error."""
    labels, candidate = np.asarray(labels), np.asarray(candidate)
    idx = settings.indices(len(labels))
    fn = settings.metric_fn()
    low_m, high_m = settings.interval(np.array([fn(labels[i], candidate[i]) for i in idx]))
    return DropStatistics(
        drop=round((baseline - fn(labels, candidate)) * 100, 6),
        low=round((baseline - high_m) * 100, 6),
        high=round((baseline - low_m) * 100, 6),
        confidence=settings.confidence,
        rows=len(labels),
        disagreements=0,
        reference_right_candidate_wrong=0,
        reference_wrong_candidate_right=0,
        mcnemar_p=None,
        paired=False,
    )


def rows_to_decide(rows: int, drop: float, low: float, high: float, budget: float) -> int | None:
    """Rows an evaluation set would need for the interval to clear the budget on one side, assuming
    the same drop and a half-width shrinking as 1/sqrt(rows). None when the drop sits on the budget."""
    margin = abs(budget - drop)
    if margin == 0:
        return None
    half = (high - low) / 2
    return max(rows, math.ceil(rows * (half / margin) ** 2))
