"""Measuring what the stages made: every artifact evaluated in its own runtime (cached by content),
ONNX graphs through the release matrix, the starting checkpoint, test-hook perturbations, and the
points of pareto.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compress.core import cache
from compress.core.artifact import Artifact
from compress.core.code import code_hash
from compress.core.hashing import tree_sha256
from compress.core.records import Evaluation, ModelRecord, ReleaseMatrix, ShapeResult
from compress.evaluation.evaluate import evaluate_artifact, predict_labels
from compress.evaluation.shapes import matrix_problems, release_matrix
from compress.models.loading import build_source_model, load_tokenizer
from compress.output.plots import ArtifactPoint
from compress.pipeline.perturb import perturb_folder
from compress.pipeline.state import Made, Measured, RunInputs, RunState
from compress.recipe.schema import Shape
from compress.runtimes import RUNTIMES, memoized


def source_parts(inputs: RunInputs) -> dict:
    """What the starting checkpoint's cache key hashes: the [model] table (a local checkpoint by
    content, a hub model by the commit its revision names), the labels, the toolchain and the
    loader's code. Every stage's key chains on it, so a moved hub tag rebuilds them all."""
    spec = inputs.loaded.recipe.model
    label_names = inputs.loaded.recipe.data.label_names
    identity = spec.model_dump(mode="json")
    if spec.path is not None:
        identity["content"] = tree_sha256(spec.path)
    if spec.hub is not None:
        identity["hub_commit"] = inputs.hub_commit
    if label_names is not None:  # they go into config.json
        identity["label_names"] = label_names
    return {
        "model": identity,
        "num_labels": inputs.n_labels,
        "versions": inputs.environment.versions,
        "code": code_hash("compress.models.loading"),
    }


def source_key(inputs: RunInputs) -> str:
    """The starting checkpoint's cache key: a hash of `source_parts`."""
    return cache.json_key(source_parts(inputs))


def model_record(inputs: RunInputs, source: Artifact) -> ModelRecord:
    """The manifest's `model`: where the starting model came from, and a hub model's commit."""
    spec = inputs.loaded.recipe.model
    return ModelRecord(
        source=spec.source,
        hub=spec.hub,
        revision=(spec.revision or "main") if spec.hub is not None else None,
        hub_commit=inputs.hub_commit,
        sha256=source.sha256,
        cache_key=source.key,
    )


def source_checkpoint(inputs: RunInputs) -> Artifact:
    """The starting model as a cached checkpoint folder, so every later key hashes real content.
    A hub model is built from the commit its key names, even if its tag has moved since."""
    spec = inputs.loaded.recipe.model
    if spec.hub is not None:
        spec = spec.model_copy(update={"revision": inputs.hub_commit})
    label_names = inputs.loaded.recipe.data.label_names
    key = source_key(inputs)

    def work(tmp: Path) -> dict:
        inputs.reporter.info("[bold]▶[/] source model")
        build_source_model(spec, inputs.n_labels, tmp / "checkpoint", label_names)
        return {"sha256": tree_sha256(tmp / "checkpoint")}

    (folder, record), _ = inputs.cache.get("source", key, work)
    return Artifact("checkpoint", "torch", "fp32", folder / "checkpoint", record["sha256"], key=key)


def assess(artifact: Artifact, inputs: RunInputs, state: RunState) -> Measured:
    """Evaluate an artifact, and run any but an FP32 PyTorch checkpoint (ONNX, an engine, a PyTorch INT8
    program) through the release matrix against the latest FP32 PyTorch model (the one it was made
    from). Remembered in `state.measured`."""
    measured = evaluate(artifact, inputs)
    spec = inputs.loaded.recipe.evaluation.release_matrix
    reference = state.artifacts.get("checkpoint")
    lowered = (artifact.runtime, artifact.precision) != ("torch", "fp32")
    if lowered and spec.enabled and reference is not None:
        release = _release_matrix(artifact, reference, inputs, state)
        measured = Measured(
            measured.evaluation.model_copy(update={"release_matrix": release}), measured.predictions
        )
    state.measured[artifact.sha256] = measured
    return measured


def _release_matrix(
    artifact: Artifact, reference: Artifact, inputs: RunInputs, state: RunState
) -> ReleaseMatrix:
    spec = inputs.loaded.recipe.evaluation.release_matrix
    key = cache.json_key(
        {
            "artifact": artifact.sha256,
            "reference": reference.sha256,
            "data": inputs.data.to_json(),
            "spec": spec.model_dump(mode="json"),
            "env": inputs.environment_key(),
            "code": code_hash("compress.evaluation.shapes"),
        }
    )

    def work(_tmp: Path) -> dict:
        label = f"release matrix {artifact.runtime}/{artifact.precision}"
        with inputs.reporter.bar(label, len(spec.shapes()) * 2) as advance:
            if reference.sha256 not in state.references:  # every ONNX artifact is checked against it
                state.references[reference.sha256] = memoized(RUNTIMES[reference.runtime](reference.path))
            shapes = release_matrix(
                state.references[reference.sha256],
                RUNTIMES[artifact.runtime](artifact.path),
                load_tokenizer(artifact.path),
                inputs.splits.test.texts,
                spec,
                advance,
            )
        return {"reference": reference.sha256, "shapes": {k: r.to_json() for k, r in shapes.items()}}

    (_, record), _ = inputs.cache.get("release", key, work)
    shapes = {k: ShapeResult.from_json(r) for k, r in record["shapes"].items()}
    problems = matrix_problems(shapes, spec.min_label_agreement)
    worst = min((r.label_agreement or 0.0) for r in shapes.values())
    inputs.reporter.info(
        f"  release matrix {len(shapes)} shapes: "
        + (f"[red]{len(problems)} failing[/]" if problems else "all pass")
        + f", lowest label agreement {worst:.2%}"
    )
    return ReleaseMatrix(reference=record["reference"], shapes=shapes, problems=tuple(problems))


def _latency_shapes(inputs: RunInputs) -> list[Shape]:
    """1x128 (every artifact, for pareto.png) and each target's latency shape."""
    shapes = {Shape(1, 128)} | {t.latency_shape for t in inputs.loaded.recipe.targets}
    return sorted(shapes)


def evaluate(artifact: Artifact, inputs: RunInputs) -> Measured:
    """The artifact on every test row, and its latency at every shape a target or the plot needs;
    cached by the artifact's content, the data, the evaluation settings and the code."""
    recipe = inputs.loaded.recipe
    shapes = _latency_shapes(inputs)
    key = cache.json_key(
        {
            "artifact": artifact.sha256,
            "runtime": artifact.runtime,
            "data": inputs.data.to_json(),
            "evaluation": recipe.evaluation.model_dump(mode="json", exclude={"release_matrix"}),
            "shapes": [str(s) for s in shapes],
            "env": inputs.environment_key(),
            "code": code_hash("compress.evaluation.evaluate"),
        }
    )

    def work(_tmp: Path) -> dict:
        evaluation, predictions = evaluate_artifact(
            artifact,
            inputs.splits.test,
            num_labels=inputs.n_labels,
            max_length=recipe.data.max_length,
            spec=recipe.evaluation,
            shapes=shapes,
            progress=inputs.reporter,
        )
        return {"evaluation": evaluation.to_json(), "predictions": predictions.tolist()}

    (_, record), built = inputs.cache.get("evaluate", key, work)
    evaluation = Evaluation.from_json(record["evaluation"])
    metric = recipe.evaluation.metric
    inputs.reporter.info(
        f"  {artifact.runtime}/{artifact.precision}: {metric} {evaluation.metric(metric):.4f}, "
        f"1x128 {evaluation.latency['1x128'].median_ms:.1f} ms, "
        f"{evaluation.size_bytes / 1e6:.1f} MB" + ("" if built else "  (cached)")
    )
    return Measured(evaluation, np.asarray(record["predictions"], dtype=np.int64))


def pool_predictions(artifact: Artifact, inputs: RunInputs) -> np.ndarray:
    """The artifact's answers on [evaluation.pool]'s rows, cached by the artifact and the pool."""
    assert inputs.pool is not None
    pool = inputs.pool
    recipe = inputs.loaded.recipe
    key = cache.json_key(
        {
            "artifact": artifact.sha256,
            "pool": inputs.pool_id,
            "max_length": recipe.data.max_length,
            "code": code_hash("compress.evaluation.evaluate"),
        }
    )

    def work(_tmp: Path) -> dict:
        label = f"pool rows {artifact.runtime}/{artifact.precision}"
        predictions = predict_labels(
            artifact,
            pool,
            max_length=recipe.data.max_length,
            batch_size=recipe.evaluation.batch_size,
            progress=inputs.reporter,
            label=label,
        )
        return {"predictions": predictions.tolist()}

    (_, record), _ = inputs.cache.get("pool", key, work)
    return np.asarray(record["predictions"], dtype=np.int64)


def perturb_targets(inputs: RunInputs, state: RunState) -> None:
    """The `perturb_weights` test hook: each such target gets a noisy copy of its artifact."""
    for i, target in enumerate(inputs.loaded.recipe.targets):
        made = state.made_for(target.name, target.runtime, target.precision)
        if target.perturb_weights is None or made is None:
            continue
        artifact = made.artifact
        std, seed = target.perturb_weights, inputs.loaded.recipe.evaluation.seed + i
        key = cache.json_key(
            {
                "perturb": artifact.sha256,
                "std": std,
                "seed": seed,
                "code": code_hash("compress.pipeline.perturb"),
            }
        )

        def work(tmp: Path, artifact: Artifact = artifact, std: float = std, seed: int = seed) -> dict:
            perturb_folder(artifact.path, tmp / "model", std, seed)
            return {"sha256": tree_sha256(tmp / "model")}

        (folder, record), _ = inputs.cache.get("perturb", key, work)
        noisy = Artifact(
            artifact.kind, artifact.runtime, artifact.precision, folder / "model", record["sha256"]
        )
        inputs.reporter.info(f"[yellow]⚠[/] {target.name}: weights perturbed (std x{std}) by the recipe")
        assess(noisy, inputs, state)
        state.by_name[target.name] = Made(noisy, made.stage)
        state.perturbed[target.name] = std


def artifact_points(state: RunState) -> list[ArtifactPoint]:
    """Every evaluated artifact of the run (perturbed copies included), for the accuracy/latency plot."""
    made = [
        (
            f"{stage.name}: {a.runtime}/{a.precision}"
            + (f" ({', '.join(a.serves)})" if a.serves else "")
            + (" (CPU proxy, not the engine)" if a.proxy else ""),
            a,
        )
        for stage in state.stages
        for a in state.by_stage.get(stage.name, [])
    ]
    made += [
        (f"{name} (perturbed x{std})", state.by_name[name].artifact) for name, std in state.perturbed.items()
    ]
    points = []
    for label, a in made:
        evaluation = state.measured[a.sha256].evaluation
        points.append(
            ArtifactPoint(
                label=label,
                accuracy=evaluation.accuracy,
                macro_f1=evaluation.macro_f1,
                latency_ms={shape: lat.median_ms for shape, lat in evaluation.latency.items()},
                size_mb=evaluation.size_bytes / 1e6,
            )
        )
    return points
