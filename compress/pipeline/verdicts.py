"""The run's judgement: the baseline, every target's candidate, the judge, and, where
[evaluation.pool] is set, the pool rows that gates the test rows could not decide draw on."""

from __future__ import annotations

import dataclasses

import numpy as np

from compress.core.artifact import Artifact
from compress.core.records import Manifest
from compress.pipeline.assess import assess, pool_predictions
from compress.pipeline.judge import Baseline, Candidate, Judgement, Pool, judge, undecided
from compress.pipeline.previous import tolerances
from compress.pipeline.state import Made, RunInputs, RunState


def baseline_of(inputs: RunInputs, state: RunState, source: Artifact) -> tuple[Baseline, Artifact | None]:
    """The recipe's pinned metric, else the first FP32 PyTorch model a stage made (the starting
    checkpoint when none did), with its answers for paired statistics; and that model."""
    evaluation = inputs.loaded.recipe.evaluation
    if evaluation.baseline is not None:
        return Baseline(evaluation.baseline, "recipe (evaluation.baseline)"), None
    made = state.reference or Made(source, "source")
    measured = state.measured.get(made.artifact.sha256) or assess(made.artifact, inputs, state)
    metric = measured.evaluation.metric(evaluation.metric)
    return Baseline(metric, f"{made.stage} torch/fp32", measured.predictions), made.artifact


def judge_run(
    inputs: RunInputs, state: RunState, source: Artifact, previous: tuple[Manifest, str] | None
) -> Judgement:
    """Every target judged. With a pool, a first judgement finds the gates the test rows cannot
    decide; their candidates and the reference answer the pool rows; the second judgement draws
    on them (and only on them: a decided gate never costs a pool pass)."""
    recipe = inputs.loaded.recipe
    baseline, reference = baseline_of(inputs, state, source)
    candidates: dict[str, Candidate | str] = {
        t.name: state.candidate(t.name, t.runtime, t.precision) for t in recipe.targets
    }
    pool = None
    if inputs.pool is not None and recipe.evaluation.pool is not None:
        chunk = recipe.evaluation.pool.chunk or len(inputs.splits.test.labels)
        pool = Pool(np.asarray(inputs.pool.labels), chunk)

    def run_judge() -> Judgement:
        return judge(
            recipe.targets,
            candidates,
            baseline,
            evaluation=recipe.evaluation,
            labels=inputs.splits.test.labels,
            n_labels=inputs.n_labels,
            previous=previous[0] if previous else None,
            tolerances=tolerances(inputs.loaded),
            pool=pool,
        )

    judged = run_judge()
    need = [t.name for t in judged.targets if undecided(t) and isinstance(candidates[t.name], Candidate)]
    if pool is None or not need:
        return judged
    inputs.reporter.info(f"  {len(need)} target(s) inconclusive on the test rows: drawing on the pool")
    if reference is not None:
        baseline = dataclasses.replace(baseline, pool_predictions=pool_predictions(reference, inputs))
    for name in need:
        target = next(t for t in recipe.targets if t.name == name)
        made = state.made_for(name, target.runtime, target.precision)
        candidate = candidates[name]
        if made is not None and isinstance(candidate, Candidate):
            candidates[name] = dataclasses.replace(
                candidate, pool_predictions=pool_predictions(made.artifact, inputs)
            )
    return run_judge()
