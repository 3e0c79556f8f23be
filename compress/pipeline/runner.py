"""Run a recipe: stages in order, each cached by content, every artifact measured, targets judged,
one bundle written.

The runner knows no stage by name: it walks the stage table (compress.recipe.stages), runs the
stages whose table is in the recipe, and matches artifacts to targets: an artifact built for named
targets (`serves`) goes to those, any other by (runtime, precision).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from compress.core import cache
from compress.core.artifact import Artifact
from compress.core.cache import Cache
from compress.core.errors import CompressError
from compress.core.progress import Reporter
from compress.core.records import ChainRecord, Manifest, RecipeRecord, StageRecord
from compress.output import bundle
from compress.pipeline.assess import artifact_points, model_record, perturb_targets, source_checkpoint
from compress.pipeline.execute import execute, stage_key
from compress.pipeline.previous import comparison_with, previous_run
from compress.pipeline.state import Made, RunInputs, RunState, read_inputs
from compress.pipeline.verdicts import judge_run
from compress.recipe.load import LoadedRecipe
from compress.recipe.stages import enabled_stages
from compress.verdict import gates


@dataclass(frozen=True)
class RunOutcome:
    """Where the bundle went, its verdict, and what each stage made (cache folders)."""

    bundle: Path
    verdict: str
    artifacts: dict[str, list[Artifact]]


def select_stages(enabled: list[str], only: str | None, start: str | None) -> set[str]:
    """The stages to (re)run: all, one (`--only`), or one and everything after it (`--from`)."""
    for flag, name in (("--only", only), ("--from", start)):
        if name is not None and name not in enabled:
            raise CompressError(f"{flag} {name}: not a stage of this recipe (stages: {', '.join(enabled)})")
    if only:
        return {only}
    if start:
        return set(enabled[enabled.index(start) :])
    return set(enabled)


def run(
    loaded: LoadedRecipe,
    *,
    out_root: Path | None = None,
    use_cache: bool = True,
    only: str | None = None,
    start: str | None = None,
    reporter: Reporter | None = None,
    regression_baseline: Path | None = None,
) -> RunOutcome:
    """Run the recipe and write its bundle. Raises CompressError on bad input.

    `regression_baseline` (a bundle or manifest) overrides the recipe's [regression] baseline."""
    reporter = reporter or Reporter()
    out_root = Path(out_root or loaded.recipe.output.dir)
    started = time.perf_counter()
    store = _open_cache(out_root, loaded, reporter)
    try:
        inputs = read_inputs(loaded, store, reporter)
        previous = previous_run(loaded, out_root, regression_baseline)  # read now: bad input fails early
        splits = inputs.splits
        reporter.info(
            f"[bold]compress[/] {loaded.name}: {len(splits.train.texts)} train / "
            f"{len(splits.dev.texts)} dev / {len(splits.test.texts)} test rows"
        )
        state = RunState()
        source = source_checkpoint(inputs)
        state.artifacts["checkpoint"] = source
        _run_stages(inputs, state, only=only, start=start, use_cache=use_cache)
        if not any(("torch", "fp32") in s.makes for s in enabled_stages(loaded.recipe)):
            state.add(Made(source, "source"))  # nothing retrains it: the starting model is the torch target
        perturb_targets(inputs, state)
        manifest, folders = _judged_manifest(inputs, state, source, previous)
        manifest = manifest.model_copy(update={"seconds": round(time.perf_counter() - started, 2)})
        points = artifact_points(state)
        bundle_dir = bundle.write(
            loaded, out_root, manifest, run_id=store.run_id, target_folders=folders, points=points
        )
        return RunOutcome(bundle_dir, manifest.verdict, state.by_stage)
    finally:
        store.release()


def _open_cache(out_root: Path, loaded: LoadedRecipe, reporter: Reporter) -> Cache:
    """This run's view of `<out>/.cache` under a fresh run id; leftovers of dead runs removed."""
    store = Cache(out_root / ".cache", bundle.new_run_id(), loaded.name)
    try:
        store.root.mkdir(parents=True, exist_ok=True)
        stale = cache.remove_stale_entries(store.root) + cache.remove_stale(out_root / loaded.name, -1)
    except OSError as exc:
        raise cache.storage_error(exc, f"the output folder {out_root}") from None
    if stale:
        reporter.info(f"removed {len(stale)} unfinished folder(s) left by an interrupted run")
    return store


def _judged_manifest(
    inputs: RunInputs, state: RunState, source: Artifact, previous: tuple[Manifest, str] | None
) -> tuple[Manifest, dict[str, Path]]:
    """Judge every target (and compare with the previous run); the manifest to write, and each
    built target's model folder."""
    loaded = inputs.loaded
    judged = judge_run(inputs, state, source, previous)
    recipe_record = RecipeRecord(
        path=str(loaded.path),
        sha256=loaded.sha256(),
        resolved=loaded.resolved(),
        chain=[ChainRecord(path=str(f.path), sha256=f.sha256) for f in loaded.chain],
        overrides=list(loaded.overrides),
    )
    model = model_record(inputs, source)
    comparison = None
    if previous is not None and judged.regression is not None:
        comparison = comparison_with(previous, judged.regression, recipe_record, inputs, model)
        inputs.reporter.info(
            f"regression vs {previous[1]}: "
            + ("[red]breached[/]" if comparison.breached else "no regression beyond tolerance")
        )
    verdict = gates.overall_verdict(
        [(t.required, t.gates) for t in judged.targets],
        failed_stages=sum(s.status == "failed" for s in state.stages),
    )
    folders = {
        t.name: made.artifact.path
        for t in judged.targets
        if t.artifact_sha256 is not None and (made := state.made_for(t.name, t.runtime, t.precision))
    }
    manifest = Manifest(
        recipe_name=loaded.name,
        run_id="",  # given when the bundle is written
        created="",
        verdict=verdict,
        seconds=0.0,
        recipe=recipe_record,
        data=inputs.data,
        environment=inputs.environment,
        model=model,
        stages=tuple(state.stages),
        targets=tuple(judged.targets),
        regression=comparison,
    )
    return manifest, folders


def _run_stages(
    inputs: RunInputs, state: RunState, *, only: str | None, start: str | None, use_cache: bool
) -> None:
    """Every enabled stage in order: cached, rebuilt, skipped as not selected, or not run after a
    failure."""
    stages = enabled_stages(inputs.loaded.recipe)
    names = [s.name for s in stages]
    selected = select_stages(names, only, start)
    forced = selected if (only or start or not use_cache) else set()
    failed = False
    for i, stage in enumerate(stages):
        if failed:
            state.stages.append(
                StageRecord(name=stage.name, status="not run", reason="an earlier stage failed")
            )
            continue
        key = stage_key(stage, inputs, state)
        hit = None if stage.name in forced else inputs.cache.lookup(stage.name, key)
        if hit is None and stage.name not in selected:
            if any(later in selected for later in names[i + 1 :]):
                raise CompressError(
                    f"stage '{stage.name}' has no cached output for this recipe; run it first "
                    "(without --only/--from)"
                )
            state.stages.append(StageRecord(name=stage.name, status="not run", reason="not selected"))
            continue
        failed = (
            execute(stage, inputs, state, forced=stage.name in forced, key=key, hit=hit).status == "failed"
        )
