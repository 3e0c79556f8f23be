"""The judge: targets x measurements x baseline x (previous run) x (pool) -> target records. Pure.

Numbers and records in, records out: nothing here reads files, runs models or prints, so the whole
decision is table-tested (tests/pipeline/test_judge.py). Every gate a target has is computed here
and the verdict is `gates.target_verdict` over all of them, once; regression gates against a
previous run are gates like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compress.core.records import (
    Budgets,
    ComparisonRow,
    DropStatistics,
    Evaluation,
    Gate,
    Manifest,
    TargetRecord,
    Tolerances,
)
from compress.recipe.schema import EvaluationSpec, Target
from compress.verdict import gates, stats
from compress.verdict.regression import compare_target


@dataclass(frozen=True)
class Candidate:
    """What was made for a target, measured: the artifact's evaluation on the test rows."""

    stage: str
    artifact_sha256: str
    evaluation: Evaluation
    predictions: np.ndarray
    stage_failure: str | None = None  # the stage made it but missed its own check: best effort
    proxy: str | None = None  # why a stand-in was measured (no engine could be built here)
    perturbed: float | None = None  # test hook: the noise the recipe added to its weights
    pool_predictions: np.ndarray | None = None  # its answers on the pool, once a gate needed them


@dataclass(frozen=True)
class Baseline:
    """The metric every drop is measured from, and the reference's answers when it is a model."""

    metric: float
    source: str  # for the report: "finetune torch/fp32", "recipe (evaluation.baseline)"
    predictions: np.ndarray | None = None  # None: a pinned number, so drops are unpaired
    pool_predictions: np.ndarray | None = None  # the reference's answers on the pool


@dataclass(frozen=True)
class Pool:
    """Labelled rows set aside for gates the test rows cannot decide ([evaluation.pool]), in a
    random order, drawn `chunk` at a time. Its size fixes how many looks a gate may take, and so the
    confidence of each look, from the first one on."""

    labels: np.ndarray
    chunk: int

    @property
    def looks(self) -> int:
        """Looks a gate may take: the test rows, then each chunk."""
        return stats.planned_looks(len(self.labels), self.chunk)


@dataclass(frozen=True)
class Judgement:
    """The target records, and the regression rows when a previous run was compared."""

    targets: list[TargetRecord]
    regression: list[ComparisonRow] | None


def budgets(target: Target, on_inconclusive: str) -> Budgets:
    """A target's budgets as the manifest records them."""
    return Budgets(
        max_accuracy_drop=target.max_accuracy_drop,
        max_latency_ms=target.max_latency_ms,
        max_size_mb=target.max_size_mb,
        latency_shape=str(target.latency_shape),
        max_disagreement=target.max_disagreement,
        confidence=target.confidence,
        on_inconclusive=on_inconclusive,
    )


def drop_statistics(
    target: Target,
    evaluation: EvaluationSpec,
    baseline: Baseline,
    candidate: Candidate,
    labels: np.ndarray,
    n_labels: int,
    pool: Pool | None = None,
) -> DropStatistics:
    """Paired against the FP32 reference's predictions when the baseline is that model's metric;
    from the candidate's own sampling error when the baseline is a pinned number. With a pool each
    look's confidence is corrected for the looks a gate may take, and once the pool's answers are
    there, chunks are drawn while the interval straddles the budget (stats.sequential_drop)."""
    settings = stats.Bootstrap(
        metric=evaluation.metric,
        num_labels=n_labels,
        confidence=stats.corrected(target.confidence, pool.looks if pool is not None else 1),
        resamples=evaluation.bootstrap_resamples,
        seed=evaluation.seed,
    )
    ref, ref_pool = baseline.predictions, baseline.pool_predictions
    drawn = candidate.pool_predictions is not None and (ref is None or ref_pool is not None)
    if pool is None or not drawn:
        if ref is not None:
            return stats.paired_drop(labels, ref, candidate.predictions, settings)
        return stats.unpaired_drop(baseline.metric, labels, candidate.predictions, settings)
    assert candidate.pool_predictions is not None  # `drawn`
    rows = len(labels) + len(pool.labels)
    return stats.sequential_drop(
        np.concatenate([labels, pool.labels]),
        np.concatenate([ref, ref_pool]) if ref is not None and ref_pool is not None else np.zeros(rows),
        np.concatenate([candidate.predictions, candidate.pool_predictions]),
        test_rows=len(labels),
        chunk=pool.chunk,
        budget=target.max_accuracy_drop,
        settings=settings,
        baseline=None if ref is not None else baseline.metric,
    )


def changed_labels(
    target: Target, baseline: Baseline, candidate: Candidate, pool: Pool | None
) -> tuple[int, int] | None:
    """(changed labels, rows) for the agreement gate: the test rows, then pool chunks while its
    interval straddles the budget; None without reference answers (a pinned baseline)."""
    ref, ref_pool, cand_pool = baseline.predictions, baseline.pool_predictions, candidate.pool_predictions
    if ref is None:
        return None
    if pool is None or target.max_disagreement is None or ref_pool is None or cand_pool is None:
        return int((ref != candidate.predictions).sum()), len(ref)
    changed, rows, _ = stats.sequential_agreement(
        np.concatenate([ref, ref_pool]),
        np.concatenate([candidate.predictions, cand_pool]),
        test_rows=len(ref),
        chunk=pool.chunk,
        max_disagreement=target.max_disagreement,
        confidence=stats.corrected(target.confidence, pool.looks),
    )
    return changed, rows


def target_gates(
    target: Target,
    candidate: Candidate,
    baseline: Baseline,
    statistics: DropStatistics,
    metric_name: str,
    on_inconclusive: str,
    pool: Pool | None = None,
) -> list[Gate]:
    """Every gate of a built target, before any comparison with a previous run."""
    ev = candidate.evaluation
    proxy = candidate.proxy is not None  # e.g. a TensorRT graph on the CPU: no engine timing
    latency = ev.latency.get(str(target.latency_shape))
    results = gates.judge_target(
        metric_name=metric_name,
        baseline=baseline.metric,
        metric=ev.metric(metric_name),
        max_accuracy_drop=target.max_accuracy_drop,
        latency_ms=latency.median_ms if latency else None,
        max_latency_ms=None if proxy else target.max_latency_ms,
        size_mb=ev.size_bytes / 1e6,
        max_size_mb=None if proxy else target.max_size_mb,
        interval=(statistics.low, statistics.high),
        confidence=statistics.confidence,
        rows_needed=stats.rows_to_decide(
            statistics.rows, statistics.drop, statistics.low, statistics.high, target.max_accuracy_drop
        ),
        disagreements=changed_labels(target, baseline, candidate, pool),
        max_disagreement=target.max_disagreement,
        on_inconclusive=on_inconclusive,
        rows=statistics.rows,
        pooled_drop=statistics.drop if statistics.pool_rows else None,
    )
    if ev.release_matrix is not None:
        matrix = ev.release_matrix
        results.append(gates.release_matrix_gate(matrix.problems, len(matrix.shapes)))
    if candidate.proxy is not None:
        results.insert(0, gates.proxy_gate(candidate.proxy, target.allow_proxy))
    if candidate.stage_failure is not None:
        results.append(gates.stage_failed(candidate.stage, candidate.stage_failure))
    return results


def _record(
    target: Target,
    candidate: Candidate | str,
    baseline: Baseline | str,
    evaluation: EvaluationSpec,
    labels: np.ndarray,
    n_labels: int,
    pool: Pool | None,
) -> TargetRecord:
    """A target's record with every gate but regression; `candidate` / `baseline` as for judge()."""
    metric_name = evaluation.metric
    on_inconclusive = target.on_inconclusive or evaluation.on_inconclusive
    common: dict[str, Any] = dict(
        name=target.name,
        runtime=target.runtime,
        precision=target.precision,
        required=target.required,
        metric_name=metric_name,
        baseline=baseline.metric if isinstance(baseline, Baseline) else None,
        baseline_from=baseline.source if isinstance(baseline, Baseline) else None,
        budgets=budgets(target, on_inconclusive),
    )
    if isinstance(candidate, str) or isinstance(baseline, str):
        why = candidate if isinstance(candidate, str) else str(baseline)
        results = [gates.not_built(why)]
        return TargetRecord(**common, gates=tuple(results), verdict=gates.target_verdict(results))
    ev = candidate.evaluation
    statistics = drop_statistics(target, evaluation, baseline, candidate, labels, n_labels, pool)
    results = target_gates(target, candidate, baseline, statistics, metric_name, on_inconclusive, pool)
    return TargetRecord(
        **common,
        statistics=statistics,
        metric=ev.metric(metric_name),
        accuracy=ev.accuracy,
        macro_f1=ev.macro_f1,
        drop=gates.accuracy_drop_points(baseline.metric, ev.metric(metric_name)),
        latency=ev.latency.get(str(target.latency_shape)),
        size_mb=round(ev.size_bytes / 1e6, 3),
        stage=candidate.stage,
        artifact_sha256=candidate.artifact_sha256,
        proxy=candidate.proxy,
        perturbed_weights=candidate.perturbed,
        gates=tuple(results),
        verdict=gates.target_verdict(results, proxy=candidate.proxy is not None),
    )


def judge(
    targets: Sequence[Target],
    candidates: Mapping[str, Candidate | str],
    baseline: Baseline | str,
    *,
    evaluation: EvaluationSpec,
    labels: Sequence[int],
    n_labels: int,
    previous: Manifest | None = None,
    tolerances: Tolerances | None = None,
    pool: Pool | None = None,
) -> Judgement:
    """Every target's record. `candidates[name]` is what serves the target, or a sentence saying
    why nothing does; `baseline` is the reference metric, or a sentence saying why there is none.
    With `previous`, each target is also compared with that run's target of the same name
    (`tolerances`), and its regression gates count in its verdict. With `pool`, accuracy and
    agreement gates look at the corrected confidence and, where the candidate's and reference's
    pool answers are given, draw pool rows while they straddle their budget."""
    labels_array = np.asarray(labels)
    records = [
        _record(t, candidates[t.name], baseline, evaluation, labels_array, n_labels, pool) for t in targets
    ]
    if previous is None:
        return Judgement(records, None)
    tol = tolerances or Tolerances()
    rows, final = [], []
    for record in records:
        row = compare_target(previous.target(record.name), record, tol)
        rows.append(row)
        added = [g.model_copy(update={"message": f"vs {previous.run_id}: {g.message}"}) for g in row.gates]
        all_gates = (*record.gates, *added)
        verdict = gates.target_verdict(all_gates, proxy=record.proxy is not None)
        final.append(record.model_copy(update={"gates": all_gates, "verdict": verdict}))
    rows += [
        compare_target(old, None, tol)
        for old in previous.targets
        if old.name not in {t.name for t in targets}
    ]
    return Judgement(final, rows)


def undecided(record: TargetRecord) -> bool:
    """An accuracy or agreement gate of this target could not tell: more rows might."""
    return any(g.result == "inconclusive" and g.gate in ("accuracy", "agreement") for g in record.gates)


def stage_budget_gate(
    *, key: str, budget: float, reference: float, metric: float, metric_name: str, against: str
) -> Gate:
    """A stage's own budget (`key`, e.g. prune.max_accuracy_drop): the artifact it made against
    the artifact it read, on the test rows."""
    result = gates.accuracy_gate(reference, metric, budget, metric_name)
    message = f"{key}: against {against} on the test rows: {result.message}"
    return result.model_copy(update={"message": message})
