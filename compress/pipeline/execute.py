"""One stage of a run: its cache key, the cached output or a fresh build, the measurement of what it
made, and its own budget. Knows no stage by name: everything comes from the stage table's row."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from compress.core import cache
from compress.core.artifact import Artifact
from compress.core.code import code_hash
from compress.core.errors import StageFailed
from compress.core.hashing import folder_bytes, tree_sha256
from compress.core.records import ArtifactRecord, StageRecord
from compress.core.stage import StageContext, StageResult
from compress.pipeline.assess import assess
from compress.pipeline.judge import stage_budget_gate
from compress.pipeline.state import Made, RunInputs, RunState
from compress.recipe.schema import Recipe
from compress.recipe.stages import StageDef


def stage_reads(stage: StageDef[Any], recipe: Recipe) -> dict:
    """What a stage reads from the recipe beyond its own table, for its cache key: its module's
    `reads(recipe)` where it defines one (e.g. quantize: which ISAs its targets name)."""
    reads = getattr(importlib.import_module(stage.module), "reads", None)
    return reads(recipe) if reads is not None else {}


def key_parts(stage: StageDef[Any], inputs: RunInputs, state: RunState) -> dict:
    """Everything that can change what the stage makes: its table, what else it reads, the data,
    its input artifacts (their content and the key of the entry that made each, so a rebuilt
    stage rebuilds every later one), the toolchain, and the code that runs it (the stage module and
    every compress module it imports: compress.core.code)."""
    spec = stage.table(inputs.loaded.recipe)
    return {
        "stage": stage.name,
        "spec": spec.model_dump(mode="json") if spec is not None else None,
        "reads": stage_reads(stage, inputs.loaded.recipe),
        "data": inputs.data.to_json(),
        "inputs": {k: [a.sha256, a.key] for k, a in sorted(state.artifacts.items())},
        "versions": inputs.environment.versions,
        "code": code_hash(stage.module),
    }


def stage_key(stage: StageDef[Any], inputs: RunInputs, state: RunState) -> str:
    """The stage's cache key: a hash of `key_parts`."""
    return cache.json_key(key_parts(stage, inputs, state))


def build_stage(stage: StageDef[Any], spec: BaseModel, inputs: RunInputs, state: RunState, tmp: Path) -> dict:
    """Run the stage into `tmp`; the cache record of what it made."""
    t0 = time.perf_counter()
    mark = len(inputs.reporter.timings)
    ctx = StageContext(inputs.loaded.recipe, spec, inputs.splits, dict(state.artifacts), tmp, inputs.reporter)
    result: StageResult = importlib.import_module(stage.module).run(ctx)
    artifacts = [
        ArtifactRecord(
            kind=a.kind,
            runtime=a.runtime,
            precision=a.precision,
            folder=a.folder,
            serves=a.serves,
            proxy=a.proxy,
            sha256=tree_sha256(tmp / a.folder),
            bytes=folder_bytes(tmp / a.folder),
        )
        for a in result.artifacts
    ]
    return {
        "stage": stage.name,
        "seconds": round(time.perf_counter() - t0, 2),
        "steps": [list(step) for step in inputs.reporter.timings[mark:]],
        "metrics": result.metrics,
        "failure": result.failure,
        "artifacts": [a.to_json() for a in artifacts],
    }


def execute(
    stage: StageDef[Any], inputs: RunInputs, state: RunState, *, forced: bool, key: str, hit: tuple | None
) -> StageRecord:
    """Reuse or build the stage, measure every artifact it made, judge its own budget; the record
    is appended to `state.stages`. A stage that raises StageFailed makes a failed record."""
    spec = stage.table(inputs.loaded.recipe)
    if spec is None:
        raise ValueError(f"stage '{stage.name}' is not in this recipe")
    reporter = inputs.reporter
    t0 = time.perf_counter()
    if hit is not None:
        folder, entry = hit
        reporter.info(f"[green]✓[/] {stage.name}: reused from cache ({key[:12]})")
    else:

        def work(tmp: Path) -> dict:
            reporter.info(f"[bold]▶[/] {stage.name}")
            return build_stage(stage, spec, inputs, state, tmp)

        try:
            (folder, entry), built = inputs.cache.get(stage.name, key, work, force=forced)
        except StageFailed as exc:
            reporter.info(f"[red]✗ {stage.name} failed:[/] {exc}")
            record = StageRecord(
                name=stage.name,
                status="failed",
                reason=str(exc),
                cached=False,
                seconds=round(time.perf_counter() - t0, 2),
                metrics=exc.metrics,
            )
            state.stages.append(record)
            return record
        if not built:
            reporter.info(f"[green]✓[/] {stage.name}: reused from cache ({key[:12]}), built by another run")
            hit = (folder, entry)
    before = dict(state.artifacts)  # what the stage read
    made = [ArtifactRecord.from_json(a) for a in entry["artifacts"]]
    evaluations = []
    steps = [(str(name), float(seconds)) for name, seconds in entry.get("steps", [])] if hit is None else []
    for a in made:
        artifact = Artifact(
            a.kind, a.runtime, a.precision, folder / a.folder, a.sha256, a.serves, a.proxy, key
        )
        state.add(Made(artifact, stage.name))
        with reporter.timed(f"evaluate {a.runtime}/{a.precision} {a.folder}"):
            evaluations.append(assess(artifact, inputs, state).evaluation)
        steps.append(reporter.timings[-1])
    failure = entry.get("failure") or budget_breach(stage, spec, made, before, inputs, state)
    if failure:
        reporter.info(f"[red]✗ {stage.name} failed (its artifacts are kept as best effort):[/] {failure}")
    record = StageRecord(
        name=stage.name,
        status="failed" if failure else "ok",
        reason=failure,
        cached=hit is not None,
        cache_key=key,
        seconds=round(time.perf_counter() - t0, 2),
        run_seconds=entry.get("seconds"),
        steps=tuple(steps),
        metrics=entry["metrics"],
        artifacts=tuple(made),
        evaluations=tuple(evaluations),
    )
    state.stages.append(record)
    return record


def budget_breach(
    stage: StageDef[Any],
    spec: BaseModel,
    made: list[ArtifactRecord],
    before: dict[str, Artifact],
    inputs: RunInputs,
    state: RunState,
) -> str | None:
    """The stage's own budget, declared in the stage table: each artifact it made against the
    artifact it read, on the test rows. The first breach, as a sentence; None when all hold."""
    if stage.budget_against is None or stage.budget_against not in before:
        return None
    reference = before[stage.budget_against]
    measured = state.measured.get(reference.sha256) or assess(reference, inputs, state)
    metric_name = inputs.loaded.recipe.evaluation.metric
    for a in made:
        budget = stage.budget(spec, a.precision)
        if budget is None:
            continue
        result = stage_budget_gate(
            key=budget[0],
            budget=budget[1],
            reference=measured.evaluation.metric(metric_name),
            metric=state.measured[a.sha256].evaluation.metric(metric_name),
            metric_name=metric_name,
            against=f"the {reference.runtime}/{reference.precision} model it read",
        )
        if not result.passed:
            return result.message
    return None
