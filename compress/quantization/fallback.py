"""Accuracy-aware fallback: take the most sensitive layers out of INT8 until the budget holds.

The budget is two numbers: the accuracy drop against the FP32 model, and the share of rows whose
label must stay the same (a model can keep its accuracy while answering differently on many rows).
Pure search over a ranking; the quantize stage supplies the two expensive steps (ranking layers by
how much they hurt when quantized, and trying a set of FP32 layers on the dev rows), so the plan
itself is table-tested without a model. A layer out of INT8 runs in FP32 or, where the build offers
one, in a cheaper form (8-bit weight-only for ONNX Runtime's MatMuls): the search finds the fewest
layers that must leave INT8 with the FP32 form, the most accurate, then tries the cheaper forms for
exactly those layers and keeps the first that still passes. Unlike Neural Compressor's `autotune`,
a search in which no trial meets the budget does not pass quietly: it returns the best effort with
`met = False`, and the stage turns that into a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from compress.verdict.gates import accuracy_drop_points

FP32 = "fp32"


@dataclass(frozen=True)
class Trial:
    layers: tuple[str, ...]  # layers out of INT8, most sensitive first
    form: str  # how they run: FP32, or a cheaper form the build offers
    drop: float  # points against the FP32 model on the dev rows
    agreement: float  # share of dev rows labelled as the FP32 model labels them
    passed: bool

    def to_dict(self) -> dict:
        return {**asdict(self), "layers": list(self.layers)}


@dataclass(frozen=True)
class SearchResult:
    trials: list[Trial]
    chosen: Trial
    met: bool


def order(sensitivity: list[tuple[str, float]], free: set[str]) -> list[str]:
    """The order in which layers go back to FP32: those whose FP32 form costs no time (`free`, table
    lookups) first, then the rest, each group most harmful first. `sensitivity` is (layer, harm).

    A lookup kept in FP32 costs only size; a MatMul kept in FP32 costs about 4x its INT8 time
    (measured, MiniLM FFN at 1x128: 1.37 ms FP32 against 0.41 ms INT8), so a slow INT8 model is
    the price of ranking by harm alone.
    """
    by_harm = sorted(sensitivity, key=lambda s: -s[1])
    return [n for n, _ in by_harm if n in free] + [n for n, _ in by_harm if n not in free]


def fp32_counts(candidates: int, max_trials: int) -> list[int]:
    """How many layers each trial keeps in FP32: 0, 1, 2, 4, ...

    Doubling finds a workable split in about log2(n) trials where one-by-one would take n; the
    count stays below the number of candidates, because keeping all of them is the FP32 model.
    """
    counts, k = [0], 1
    while len(counts) < max_trials and k < candidates:
        counts.append(k)
        k *= 2
    return counts


def search(
    *,
    reference_accuracy: float,
    budget: float | None,
    min_agreement: float | None,
    max_trials: int,
    candidates: int,
    rank: Callable[[], list[str]],
    evaluate: Callable[[tuple[str, ...], str], tuple[float, float]],
    cheaper_forms: Callable[[tuple[str, ...]], Sequence[str]] = lambda layers: (),
) -> SearchResult:
    """Try 0, 1, 2, 4, ... of the most sensitive layers in FP32 until one keeps the accuracy drop
    within `budget` and label agreement at or above `min_agreement`; then bisect between the last
    miss and that pass, while trials remain, for the fewest FP32 layers that pass (each FP32 layer
    costs speed and size: measured, 8 of 25 kept the embeddings in FP32, 23 MB -> 71 MB). Then, for
    those layers, each of `cheaper_forms(layers)` in turn (cheapest first; the bisection leaves a
    trial for it), and the first that passes is chosen.

    `evaluate(layers, form)` returns (accuracy, agreement with the FP32 model). `rank()` is called
    only if the fully quantized model misses (it is the costly part). With neither limit only the
    fully quantized trial runs. When nothing passes the chosen trial is the one with the smallest
    drop, then the highest agreement, then the fewest layers out of INT8.
    """
    limited = budget is not None or min_agreement is not None
    trials: list[Trial] = []
    ranking: list[str] = []

    def attempt(count: int, form: str = FP32) -> Trial:
        if count and not ranking:
            ranking.extend(rank())
        layers = tuple(ranking[:count])
        accuracy, agreement = evaluate(layers, form)
        drop = accuracy_drop_points(reference_accuracy, accuracy)
        # rounded like the gates, so a share equal to the limit is not lost to float noise
        agrees = min_agreement is None or round(agreement, 9) >= round(min_agreement, 9)
        trial = Trial(layers, form, drop, agreement, (budget is None or drop <= budget) and agrees)
        trials.append(trial)
        return trial

    missed, passed = 0, None
    for count in fp32_counts(candidates, max_trials if limited else 1):
        if attempt(count).passed:
            passed = count
            break
        missed = count
    if passed is None:
        best = min(trials, key=lambda t: (t.drop, -t.agreement, len(t.layers)))
        return SearchResult(trials, best, False)
    while passed - missed > 1 and len(trials) < max_trials - bool(cheaper_forms(tuple(ranking[:passed]))):
        middle = (missed + passed) // 2
        if attempt(middle).passed:
            passed = middle
        else:
            missed = middle
    chosen = next(t for t in trials if t.passed and len(t.layers) == passed)
    for form in cheaper_forms(chosen.layers) if passed else ():
        if len(trials) >= max_trials:
            break
        if (cheaper := attempt(passed, form)).passed:
            chosen = cheaper
            break
    return SearchResult(trials, chosen, True)
