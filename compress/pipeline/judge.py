"""The judge: targets x measurements x baseline x (previous run) -> target records. Pure.

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


@dataclass(frozen=True)
class Baseline:
    """The metric every drop is measured from, and the reference's answers when it is a model."""

    metric: float
    source: str  # for the report: "finetune torch/fp32", "recipe (evaluation.baseline)"
    predictions: np.ndarray | None = None  # None: a pinned number, so drops are unpaired


@dataclass(frozen=True)
class Judgement:
    """The target records, and the regression rows when a previous run was compared."""

    targets: list[TargetRecord]
    regression: list[ComparisonRow] | None


def budgets(target: Target) -> Budgets:
    """A target's budgets as the manifest records them."""
    return Budgets(
        max_accuracy_drop=target.max_accuracy_drop,
        max_latency_ms=target.max_latency_ms,
        max_size_mb=target.max_size_mb,
        latency_shape=str(target.latency_shape),
        max_disagreement=target.max_disagreement,
        decision=target.decision,
        confidence=target.confidence,
    )


def drop_statistics(
    target: Target,
    evaluation: EvaluationSpec,
    baseline: Baseline,
    candidate: Candidate,
    labels,
    n_labels: int,
) -> DropStatistics:
    """Paired against the FP32 reference's predictions when the baseline is that model's metric;
    from the candidate's own sampling error when the baseline is a pinned number."""
    settings = stats.Bootstrap(
        metric=evaluation.metric,
        num_labels=n_labels,
        confidence=target.confidence,
        resamples=evaluation.bootstrap_resamples,
        seed=evaluation.seed,
    )
    if baseline.predictions is not None:
        return stats.paired_drop(labels, baseline.predictions, candidate.predictions, settings)
    return stats.unpaired_drop(baseline.metric, labels, candidate.predictions, settings)


def target_gates(
    target: Target, candidate: Candidate, baseline: Baseline, statistics: DropStatistics, metric_name: str
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
        decision=target.decision,
        confidence=target.confidence,
        rows_needed=stats.rows_to_decide(
            statistics.rows, statistics.drop, statistics.low, statistics.high, target.max_accuracy_drop
        ),
        disagreements=(statistics.disagreements, statistics.rows) if statistics.paired else None,
        max_disagreement=target.max_disagreement,
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
    labels,
    n_labels: int,
) -> TargetRecord:
    """A target's record with every gate but regression; `candidate` / `baseline` as for judge()."""
    metric_name = evaluation.metric
    common: dict[str, Any] = dict(
        name=target.name,
        runtime=target.runtime,
        precision=target.precision,
        required=target.required,
        metric_name=metric_name,
        baseline=baseline.metric if isinstance(baseline, Baseline) else None,
        baseline_from=baseline.source if isinstance(baseline, Baseline) else None,
        budgets=budgets(target),
    )
    if isinstance(candidate, str) or isinstance(baseline, str):
        why = candidate if isinstance(candidate, str) else str(baseline)
        results = [gates.not_built(why)]
        return TargetRecord(**common, gates=tuple(results), verdict=gates.target_verdict(results))
    ev = candidate.evaluation
    statistics = drop_statistics(target, evaluation, baseline, candidate, labels, n_labels)
    results = target_gates(target, candidate, baseline, statistics, metric_name)
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
) -> Judgement:
    """Every target's record. `candidates[name]` is what serves the target, or a sentence saying
    why nothing does; `baseline` is the reference metric, or a sentence saying why there is none.
    With `previous`, each target is also compared with that run's target of the same name
    (`tolerances`), and its regression gates count in its verdict."""
    labels_array = np.asarray(labels)
    records = [_record(t, candidates[t.name], baseline, evaluation, labels_array, n_labels) for t in targets]
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


def stage_budget_gate(
    *, key: str, budget: float, reference: float, metric: float, metric_name: str, against: str
) -> Gate:
    """A stage's own budget (`key`, e.g. prune.max_accuracy_drop): the artifact it made against
    the artifact it read, on the test rows."""
    result = gates.accuracy_gate(reference, metric, budget, metric_name)
    message = f"{key}: against {against} on the test rows: {result.message}"
    return result.model_copy(update={"message": message})
