"""Measuring what the stages made: every artifact evaluated in its own runtime (cached by content),
ONNX graphs through the release matrix, test-hook perturbations, and the points of pareto.png.

`RunState` is what a run has made so far; `RunInputs` what every measurement reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compress import cache
from compress.evaluate import evaluate_artifact
from compress.hashing import tree_sha256
from compress.modeling import load_tokenizer
from compress.perturb import perturb_folder
from compress.progress import Reporter
from compress.recipe import LoadedRecipe
from compress.runtimes import RUNTIMES
from compress.shapes import matrix_problems, release_matrix
from compress.stages import Artifact


@dataclass
class RunState:
    """What the run has made so far; grows stage by stage, then becomes the manifest."""

    artifacts: dict[str, Artifact] = field(default_factory=dict)  # kind -> latest
    by_stage: dict[str, list[Artifact]] = field(default_factory=dict)  # what each stage made
    by_target: dict[tuple[str, str], tuple[Artifact, dict, str]] = field(default_factory=dict)
    by_name: dict[str, tuple[Artifact, dict, str]] = field(default_factory=dict)  # built for one target
    evaluations: dict[str, dict] = field(default_factory=dict)  # artifact sha256 -> evaluation
    release: dict[str, dict] = field(default_factory=dict)  # ONNX artifact sha256 -> release matrix
    stages: list[dict] = field(default_factory=list)
    baseline: dict | None = None


@dataclass(frozen=True)
class RunInputs:
    """What every evaluation step of one run reads: the recipe, the data and where to cache."""

    loaded: LoadedRecipe
    splits: dict
    n_labels: int
    env: dict
    data_id: dict
    cache_root: Path
    reporter: Reporter


def assess(artifact: Artifact, inputs: RunInputs, state: RunState) -> dict:
    """Evaluate an artifact, and run an ONNX one through the release matrix against the latest
    FP32 PyTorch model (the one it was made from)."""
    evaluation = evaluate(artifact, inputs)
    state.evaluations[artifact.sha256] = evaluation
    spec = inputs.loaded.recipe.evaluation.release_matrix
    if artifact.runtime in ("onnxruntime", "tensorrt") and spec.enabled:  # ONNX graphs (or engines)
        reference = next(
            (a for a in reversed(state.artifacts.values()) if (a.runtime, a.precision) == ("torch", "fp32")),
            None,
        )
        if reference is not None:
            state.release[artifact.sha256] = _release_matrix(artifact, reference, inputs)
            evaluation = {**evaluation, "release_matrix": state.release[artifact.sha256]}
            state.evaluations[artifact.sha256] = evaluation
    return evaluation


def _release_matrix(artifact: Artifact, reference: Artifact, inputs: RunInputs) -> dict:
    spec = inputs.loaded.recipe.evaluation.release_matrix
    key = cache.json_key(
        {
            "artifact": artifact.sha256,
            "reference": reference.sha256,
            "data": inputs.data_id,
            "spec": spec.model_dump(mode="json"),
            "env": inputs.env,
        }
    )
    hit = cache.lookup(inputs.cache_root, "release", key)
    if hit is None:

        def work(_tmp: Path) -> dict:
            label = f"release matrix {artifact.runtime}/{artifact.precision}"
            with inputs.reporter.bar(label, len(spec.batches) * len(spec.sequences) * 2) as advance:
                shapes = release_matrix(
                    RUNTIMES[reference.runtime](reference.path),
                    RUNTIMES[artifact.runtime](artifact.path),
                    load_tokenizer(artifact.path),
                    inputs.splits["test"].texts,
                    spec,
                    advance,
                )
            return {"reference": reference.sha256, "shapes": shapes}

        hit = cache.build(inputs.cache_root, "release", key, work)
    record = {k: v for k, v in hit[1].items() if k != "files"}
    record["problems"] = matrix_problems(record["shapes"], spec.min_label_agreement)
    worst = min((r["label_agreement"] or 0.0) for r in record["shapes"].values())
    inputs.reporter.info(
        f"  release matrix {len(record['shapes'])} shapes: "
        + (f"[red]{len(record['problems'])} failing[/]" if record["problems"] else "all pass")
        + f", lowest label agreement {worst:.2%}"
    )
    return record


def perturb_targets(inputs: RunInputs, state: RunState) -> dict[str, float]:
    """The `perturb_weights` test hook: each such target gets a noisy copy of its artifact."""
    done = {}
    for i, target in enumerate(inputs.loaded.recipe.targets):
        made = state.by_name.get(target.name) or state.by_target.get((target.runtime, target.precision))
        if target.perturb_weights is None or made is None:
            continue
        artifact, _, stage = made
        std, seed = target.perturb_weights, inputs.loaded.recipe.evaluation.seed + i
        key = cache.json_key({"perturb": artifact.sha256, "std": std, "seed": seed, "method": 2})

        def work(tmp: Path, artifact=artifact, std=std, seed=seed) -> dict:
            perturb_folder(artifact.path, tmp / "model", std, seed)
            return {"sha256": tree_sha256(tmp / "model")}

        folder, record = cache.lookup(inputs.cache_root, "perturb", key) or cache.build(
            inputs.cache_root, "perturb", key, work
        )
        noisy = Artifact(
            artifact.kind, artifact.runtime, artifact.precision, folder / "model", record["sha256"]
        )
        inputs.reporter.info(f"[yellow]⚠[/] {target.name}: weights perturbed (std x{std}) by the recipe")
        state.by_name[target.name] = (noisy, assess(noisy, inputs, state), stage)
        done[target.name] = std
    return done


def artifact_points(state: RunState, perturbed: dict[str, float]) -> list[dict]:
    """Every evaluated artifact of the run (perturbed copies included), for the accuracy/latency plot."""
    made = [
        (
            f"{stage['name']}: {a.runtime}/{a.precision}"
            + (f" ({', '.join(a.serves)})" if a.serves else "")
            + (" (CPU proxy, not the engine)" if a.proxy else ""),
            a,
        )
        for stage in state.stages
        for a in state.by_stage.get(stage["name"], [])
    ]
    made += [(f"{name} (perturbed x{std})", state.by_name[name][0]) for name, std in perturbed.items()]
    return [
        {
            "label": label,
            "accuracy": state.evaluations[a.sha256]["accuracy"],
            "macro_f1": state.evaluations[a.sha256]["macro_f1"],
            "latency": state.evaluations[a.sha256]["latency"],
            "size_mb": state.evaluations[a.sha256]["size_bytes"] / 1e6,
        }
        for label, a in made
    ]


def _latency_shapes(loaded) -> list[tuple[int, int]]:
    shapes = {(1, 128)} | {(t.latency_batch, t.latency_sequence) for t in loaded.recipe.targets}
    return sorted(shapes)


def evaluate(artifact: Artifact, inputs: RunInputs) -> dict:
    recipe = inputs.loaded.recipe
    shapes = _latency_shapes(inputs.loaded)
    key = cache.json_key(
        {
            "artifact": artifact.sha256,
            "runtime": artifact.runtime,
            "data": inputs.data_id,
            "evaluation": recipe.evaluation.model_dump(mode="json", exclude={"release_matrix"}),
            "shapes": shapes,
            "env": inputs.env,
        }
    )
    hit = cache.lookup(inputs.cache_root, "evaluate", key)
    cached = hit is not None
    if hit is None:

        def work(_tmp: Path) -> dict:
            return evaluate_artifact(
                artifact,
                inputs.splits["test"],
                num_labels=inputs.n_labels,
                max_length=recipe.data.max_length,
                spec=recipe.evaluation,
                shapes=shapes,
                progress=inputs.reporter,
            )

        hit = cache.build(inputs.cache_root, "evaluate", key, work)
    record = dict(hit[1])
    record.pop("files", None)
    metric = recipe.evaluation.metric
    inputs.reporter.info(
        f"  {artifact.runtime}/{artifact.precision}: {metric} {record[metric]:.4f}, "
        f"1x128 {record['latency']['1x128']['median_ms']:.1f} ms, "
        f"{record['size_bytes'] / 1e6:.1f} MB" + ("  (cached)" if cached else "")
    )
    return record
