"""Run a recipe: stages in order, each cached by content, every artifact evaluated, targets gated.

The runner knows no stage by name: it walks `compress.stages.STAGES`, runs the ones whose table
is in the recipe, and matches artifacts to targets: an artifact built for named targets (`serves`)
goes to those, any other by (runtime, precision).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from compress import bundle, cache, gates, regression, stats
from compress.assess import RunInputs, RunState, artifact_points, assess, evaluate, perturb_targets
from compress.data import load_splits, num_labels
from compress.environment import cpu_info, python_version
from compress.errors import CompressError, StageFailed
from compress.hashing import file_sha256, tree_sha256
from compress.modeling import build_source_model
from compress.progress import Reporter
from compress.recipe import LoadedRecipe
from compress.runtimes import versions
from compress.stages import STAGES, Artifact, StageContext, stage_function, stage_reads


@dataclass(frozen=True)
class RunOutcome:
    bundle: Path
    verdict: str
    artifacts: dict[str, list[Artifact]]  # stage name -> the artifacts it made (cache folders)


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
    recipe = loaded.recipe
    out_root = Path(out_root or recipe.output.dir)
    cache_root = out_root / ".cache"
    started = time.perf_counter()

    splits = load_splits(recipe.data)
    n_labels = num_labels(recipe.data, splits["train"])
    env = {"versions": versions(), "cpu": cpu_info()}
    data_id = {
        "spec": recipe.data.model_dump(mode="json", exclude={"train", "dev", "test"}),
        "files": {k: file_sha256(getattr(recipe.data, k)) for k in ("train", "dev", "test")},
    }
    inputs = RunInputs(loaded, splits, n_labels, env, data_id, cache_root, reporter)
    stale = cache.remove_stale_entries(cache_root) + cache.remove_stale(out_root / loaded.name, -1)
    if stale:
        reporter.info(f"removed {len(stale)} unfinished folder(s) left by an interrupted run")
    previous = _previous_run(loaded, out_root, regression_baseline)  # read now: bad input fails early
    state = RunState()
    reporter.info(
        f"[bold]compress[/] {loaded.name}: {len(splits['train'].texts)} train / "
        f"{len(splits['dev'].texts)} dev / {len(splits['test'].texts)} test rows"
    )

    source = _source_checkpoint(loaded, n_labels, env, cache_root, reporter)
    state.artifacts["checkpoint"] = source

    enabled = [name for name in STAGES if getattr(recipe, name) is not None]
    selected = select_stages(enabled, only, start)
    forced = selected if (only or start or not use_cache) else set()
    failed = False
    for i, name in enumerate(enabled):
        if failed:
            state.stages.append({"name": name, "status": "not run", "reason": "an earlier stage failed"})
            continue
        spec = getattr(recipe, name)
        key = cache.json_key(
            {
                "stage": name,
                "spec": spec.model_dump(mode="json"),
                "reads": stage_reads(name, recipe),
                "data": data_id,
                "inputs": {k: a.sha256 for k, a in sorted(state.artifacts.items())},
                "versions": env["versions"],
            }
        )
        hit = None if name in forced else cache.lookup(cache_root, name, key)
        if hit is None and name not in selected:
            if any(later in selected for later in enabled[i + 1 :]):
                raise CompressError(
                    f"stage '{name}' has no cached output for this recipe; run it first "
                    "(without --only/--from)"
                )
            state.stages.append({"name": name, "status": "not run", "reason": "not selected"})
            continue
        t0 = time.perf_counter()
        if hit is not None:
            folder, record = hit
            reporter.info(f"[green]✓[/] {name}: reused from cache ({key[:12]})")
        else:
            reporter.info(f"[bold]▶[/] {name}")
            try:
                folder, record = cache.build(
                    cache_root,
                    name,
                    key,
                    partial(_run_stage, name, spec, loaded, splits, state, reporter=reporter),
                )
            except StageFailed as exc:
                reporter.info(f"[red]✗ {name} failed:[/] {exc}")
                state.stages.append(
                    {
                        "name": name,
                        "status": "failed",
                        "reason": str(exc),
                        "cached": False,
                        "seconds": round(time.perf_counter() - t0, 2),
                        "metrics": exc.metrics,
                    }
                )
                failed = True
                continue
        new = [
            Artifact(
                a["kind"],
                a["runtime"],
                a["precision"],
                folder / a["folder"],
                a["sha256"],
                tuple(a.get("serves", ())),
                a.get("proxy"),
            )
            for a in record["artifacts"]
        ]
        stage_entry = {
            "name": name,
            "status": "ok",
            "cached": hit is not None,
            "seconds": round(time.perf_counter() - t0, 2),
            "run_seconds": record.get("seconds"),
            "metrics": record["metrics"],
            "artifacts": [],
            "evaluations": [],
        }
        replaced = {a.kind: state.artifacts.get(a.kind) for a in new}  # this stage's inputs
        for artifact in new:
            state.artifacts[artifact.kind] = artifact
            evaluation = assess(artifact, inputs, state)
            state.by_target[(artifact.runtime, artifact.precision)] = (artifact, evaluation, name)
            state.by_name.update({target: (artifact, evaluation, name) for target in artifact.serves})
            stage_entry["evaluations"].append({k: v for k, v in evaluation.items() if k != "predictions"})
            if state.baseline is None and (artifact.runtime, artifact.precision) == ("torch", "fp32"):
                state.baseline = {"stage": name, "artifact": artifact, "evaluation": evaluation}
        failure = record.get("failure") or _stage_budget_breach(spec, new, replaced, state, recipe)
        if failure:
            reporter.info(f"[red]✗ {name} failed (its artifacts are kept as best effort):[/] {failure}")
            stage_entry.update(status="failed", reason=failure)
            failed = True
        state.by_stage[name] = new
        stage_entry["artifacts"] = [
            {
                k: a.get(k)
                for k in ("kind", "runtime", "precision", "folder", "serves", "proxy", "sha256", "bytes")
            }
            for a in record["artifacts"]
        ]
        state.stages.append(stage_entry)

    if state.baseline is None and recipe.evaluation.baseline is None:
        evaluation = evaluate(source, inputs)
        state.baseline = {"stage": "source", "artifact": source, "evaluation": evaluation}
    perturbed = perturb_targets(inputs, state)

    targets = _gate_targets(loaded, state, splits["test"].labels, n_labels)
    for t in targets:
        if t["name"] in perturbed:
            t["perturbed_weights"] = perturbed[t["name"]]
    comparison = None
    if previous is not None:
        comparison = _compare_with(previous, loaded, targets, env, data_id)
        reporter.info(
            f"regression vs {previous[1]}: "
            + ("[red]breached[/]" if comparison["breached"] else "no regression beyond tolerance")
        )
    verdict = gates.overall_verdict(
        [(t["required"], t["verdict"]) for t in targets],
        failed_stages=sum(s["status"] == "failed" for s in state.stages),
    )
    bundle_dir = bundle.write(
        loaded=loaded,
        out_root=out_root,
        targets=targets,
        stages=state.stages,
        env=env,
        data_id=data_id,
        verdict=verdict,
        seconds=round(time.perf_counter() - started, 2),
        regression=comparison,
        artifacts=artifact_points(state, perturbed),
    )
    return RunOutcome(bundle_dir, verdict, state.by_stage)


def _previous_run(loaded: LoadedRecipe, out_root: Path, override: Path | None) -> tuple[dict, str] | None:
    """The manifest to compare against and where it came from, or None when there is none."""
    spec = loaded.recipe.regression
    if override is not None:
        return regression.load_manifest(override), str(override)
    if spec is None:
        return None
    if spec.baseline == "latest":
        latest = out_root / loaded.name / "latest"
        if not (latest / "manifest.json").is_file():
            return None  # the first run of this recipe: nothing to compare with yet
        return regression.load_manifest(latest), "latest"
    return regression.load_manifest(Path(spec.baseline)), spec.baseline


def _compare_with(previous, loaded, targets: list[dict], env, data_id) -> dict:
    """Regression gates from the comparison are added to each target like any other gate."""
    manifest, source = previous
    spec = loaded.recipe.regression
    tol = (
        regression.Tolerances(spec.max_metric_drop, spec.max_latency_increase, spec.max_size_increase)
        if spec is not None
        else regression.Tolerances()
    )
    current = {
        "recipe_name": loaded.name,
        "recipe": {"sha256": loaded.sha256(), "resolved": loaded.resolved()},
        "data": data_id,
        "environment": {"python": python_version(), **env["versions"], "cpu": env["cpu"]},
        "targets": targets,
    }
    comparison = regression.compare(manifest, current, tol)
    comparison["baseline"]["source"] = source
    rows = {r["name"]: r for r in comparison["targets"]}
    for t in targets:
        row = rows[t["name"]]
        t["gates"] += [
            {**g, "message": f"vs {manifest.get('run_id', source)}: {g['message']}"} for g in row["gates"]
        ]
        passed = t["gates"] and all(g["passed"] for g in t["gates"])
        t["verdict"] = ("proxy" if "proxy" in t else "pass") if passed else "fail"
    return comparison


def _run_stage(name, spec, loaded, splits, state, tmp: Path, *, reporter) -> dict:
    t0 = time.perf_counter()
    ctx = StageContext(loaded.recipe, spec, splits, dict(state.artifacts), tmp, reporter)
    result = stage_function(name)(ctx)
    return {
        "stage": name,
        "seconds": round(time.perf_counter() - t0, 2),
        "metrics": result.metrics,
        "failure": result.failure,
        "artifacts": [
            {
                "kind": a.kind,
                "runtime": a.runtime,
                "precision": a.precision,
                "folder": a.folder,
                "serves": list(a.serves),
                "proxy": a.proxy,
                "sha256": tree_sha256(tmp / a.folder),
                "bytes": sum(f.stat().st_size for f in (tmp / a.folder).rglob("*") if f.is_file()),
            }
            for a in result.artifacts
        ],
    }


def _source_checkpoint(loaded, n_labels, env, cache_root, reporter) -> Artifact:
    """The starting model as a cached checkpoint folder, so every later key hashes real content."""
    spec = loaded.recipe.model
    identity = spec.model_dump(mode="json")
    if spec.path is not None:
        identity["content"] = tree_sha256(spec.path)
    key = cache.json_key({"model": identity, "num_labels": n_labels, "versions": env["versions"]})
    hit = cache.lookup(cache_root, "source", key)
    if hit is None:
        reporter.info("[bold]▶[/] source model")

        def work(tmp: Path) -> dict:
            build_source_model(spec, n_labels, tmp / "checkpoint")
            return {"sha256": tree_sha256(tmp / "checkpoint")}

        hit = cache.build(cache_root, "source", key, work)
    folder, record = hit
    return Artifact("checkpoint", "torch", "fp32", folder / "checkpoint", record["sha256"])


def _gate_targets(loaded, state: RunState, labels: list[int], n_labels: int) -> list[dict]:
    recipe = loaded.recipe
    metric_name = recipe.evaluation.metric
    if recipe.evaluation.baseline is not None:
        baseline, baseline_from = recipe.evaluation.baseline, "recipe (evaluation.baseline)"
    elif state.baseline is not None:
        baseline = state.baseline["evaluation"][metric_name]
        baseline_from = f"{state.baseline['stage']} torch/fp32"
    else:
        baseline, baseline_from = None, None
    out = []
    for target in recipe.targets:
        entry = {
            "name": target.name,
            "runtime": target.runtime,
            "precision": target.precision,
            "required": target.required,
            "metric_name": metric_name,
            "baseline": baseline,
            "baseline_from": baseline_from,
            "budgets": {
                "max_accuracy_drop": target.max_accuracy_drop,
                "max_latency_ms": target.max_latency_ms,
                "max_size_mb": target.max_size_mb,
                "latency_shape": f"{target.latency_batch}x{target.latency_sequence}",
                "max_disagreement": target.max_disagreement,
                "decision": target.decision,
                "confidence": target.confidence,
            },
            "statistics": None,
            "metric": None,
            "drop": None,
            "latency": None,
            "size_mb": None,
            "artifact": None,
        }
        made = state.by_name.get(target.name) or state.by_target.get((target.runtime, target.precision))
        if made is None or baseline is None:
            why = (
                _why_not_built(target, state)
                if made is None
                else "no baseline metric (the fine-tune stage did not finish)"
            )
            results = [gates.not_built(why)]
        else:
            artifact, evaluation, stage = made
            shape = f"{target.latency_batch}x{target.latency_sequence}"
            latency = evaluation["latency"].get(shape)
            size_mb = evaluation["size_bytes"] / 1e6
            paired = _drop_statistics(target, recipe, state, evaluation, baseline, labels, n_labels)
            proxy = artifact.proxy is not None  # e.g. a TensorRT graph on the CPU: no engine timing
            results = gates.judge_target(
                metric_name=metric_name,
                baseline=baseline,
                metric=evaluation[metric_name],
                max_accuracy_drop=target.max_accuracy_drop,
                latency_ms=latency["median_ms"] if latency else None,
                max_latency_ms=None if proxy else target.max_latency_ms,
                size_mb=size_mb,
                max_size_mb=None if proxy else target.max_size_mb,
                interval=(paired.low, paired.high),
                decision=target.decision,
                confidence=target.confidence,
                rows_needed=stats.rows_to_decide(
                    paired.rows, paired.drop, paired.low, paired.high, target.max_accuracy_drop
                ),
                disagreements=(paired.disagreements, paired.rows) if paired.paired else None,
                max_disagreement=target.max_disagreement,
            )
            release = state.release.get(artifact.sha256)
            if release is not None:
                results.append(gates.release_matrix_gate(release["problems"], len(release["shapes"])))
            if proxy:
                results.insert(0, gates.proxy_gate(artifact.proxy, target.allow_proxy))
                entry["proxy"] = artifact.proxy
            stage_entry = next(s for s in state.stages if s["name"] == stage)
            if stage_entry["status"] == "failed":
                results.append(gates.stage_failed(stage, stage_entry["reason"]))
            entry["statistics"] = paired.to_dict()
            entry.update(
                {
                    "metric": evaluation[metric_name],
                    "accuracy": evaluation["accuracy"],
                    "macro_f1": evaluation["macro_f1"],
                    "drop": gates.accuracy_drop_points(baseline, evaluation[metric_name]),
                    "latency": latency,
                    "size_mb": round(size_mb, 3),
                    "stage": stage,
                    "artifact_sha256": artifact.sha256,
                    "source_artifact": artifact,
                }
            )
        entry["gates"] = [r.to_dict() for r in results]
        entry["verdict"] = gates.target_verdict(results, proxy="proxy" in entry)
        out.append(entry)
    return out


def _drop_statistics(target, recipe, state: RunState, evaluation, baseline, labels, n_labels):
    """Paired against the FP32 reference's predictions when the baseline is that model's metric;
    from the candidate's own sampling error when the baseline is a pinned number."""
    settings = stats.Bootstrap(
        metric=recipe.evaluation.metric,
        num_labels=n_labels,
        confidence=target.confidence,
        resamples=recipe.evaluation.bootstrap_resamples,
        seed=recipe.evaluation.seed,
    )
    if recipe.evaluation.baseline is None and state.baseline is not None:
        reference = state.baseline["evaluation"]["predictions"]
        return stats.paired_drop(labels, reference, evaluation["predictions"], settings)
    return stats.unpaired_drop(baseline, labels, evaluation["predictions"], settings)


def _stage_budget_breach(spec, new: list[Artifact], replaced: dict, state: RunState, recipe) -> str | None:
    """A stage with its own `max_accuracy_drop` is gated on what it cost: each new artifact against
    the artifact of the same kind it replaced (the pruned checkpoint against the fine-tuned one, the
    INT8 graph against the FP32 graph), or against the baseline when it replaced nothing evaluated."""
    budget = getattr(spec, "max_accuracy_drop", None)
    if budget is None or state.baseline is None:
        return None
    metric = recipe.evaluation.metric
    for artifact in new:
        before = replaced.get(artifact.kind)
        if before is not None and before.sha256 in state.evaluations:
            reference, what = state.evaluations[before.sha256][metric], "its input"
        elif recipe.evaluation.baseline is not None:
            reference, what = recipe.evaluation.baseline, "the pinned baseline"
        else:
            reference, what = state.baseline["evaluation"][metric], "the baseline"
        result = gates.accuracy_gate(reference, state.evaluations[artifact.sha256][metric], budget, metric)
        if not result.passed:
            return f"against {what} on the test rows: {result.message}"
    return None


def _why_not_built(target, state: RunState) -> str:
    bad = [s for s in state.stages if s["status"] != "ok"]
    if bad:
        s = bad[0]
        return f"stage '{s['name']}' {s['status']}: {s.get('reason', '')}"
    return f"no stage produced a {target.runtime}/{target.precision} artifact"
