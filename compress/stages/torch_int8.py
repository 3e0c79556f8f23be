"""INT8 for PyTorch: Neural Compressor autotunes static PT2E configs on the checkpoint, scored by the
recipe's metric on dev rows and calibrated on other dev rows; the best is saved as a torch.export
program (`model.pt2`) that `torch.export.load` runs with plain PyTorch.

The portable program runs eagerly in Q/DQ form, which is slow (the INT8 arithmetic is simulated), so
with `aot_inductor` the chosen program is also compiled once by AOTInductor (freezing on) into
`model.aoti.pt2`: a shared library for this CPU that loads without a compiler and that the torch runtime
serves where present. Its GELU and residual adds are fused into its INT8 linears where `fuse_post_ops`
asks (compress.quantization.inductor). Only the chosen program is compiled (a compile costs tens of
seconds), so trials are scored on the Q/DQ program; the package's dev labels are compared with it, and
one that leaves them is rebuilt with Inductor's plain lowering rather than served.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compress.core.artifact import NewArtifact
from compress.core.errors import StageFailed
from compress.core.stage import StageContext, StageResult
from compress.data.batches import pad_batch, tokenize
from compress.evaluation.evaluate import measure_latency
from compress.models.loading import forward_inputs, load_classifier, load_tokenizer
from compress.quantization import inductor
from compress.quantization import neural_compressor as nc
from compress.recipe.schema import Recipe, Shape, TorchInt8Spec
from compress.verdict.metrics import metric

BATCH = 32
FOLDER = "torch-int8"
AOTI = "model.aoti.pt2"


def _batches(ids: list[list[int]], pad_id: int, names: tuple[str, ...]) -> list[tuple[torch.Tensor, ...]]:
    """Rows in batches of BATCH, each padded to its longest row, as tensors in `names` order."""
    out = []
    for i in range(0, len(ids), BATCH):
        batch = pad_batch(ids[i : i + BATCH], pad_id)
        out.append(tuple(torch.from_numpy(batch[n]) for n in names))
    return out


def _predict(fn: Callable[..., torch.Tensor], batches: list[tuple[torch.Tensor, ...]]) -> np.ndarray:
    """Labels for every row of `batches`, in order."""
    with torch.no_grad():
        return np.concatenate([fn(*b).argmax(-1).numpy() for b in batches])


# Below this share of the program's dev labels a compiled package is wrong, not merely rounded
# differently (a known Inductor miscompile kept 51% of MiniLM's labels; see compress.quantization.inductor)
MIN_PACKAGE_AGREEMENT = 0.99


def timing_shapes(recipe: Recipe) -> list[Shape]:
    """Where the compiled packages race: the latency shapes of the recipe's torch/int8 targets (1 x
    max_length where it has none)."""
    shapes = [t.latency_shape for t in recipe.targets if (t.runtime, t.precision) == ("torch", "int8")]
    return list(dict.fromkeys(shapes)) or [Shape(1, recipe.data.max_length)]


def reads(recipe: Recipe) -> dict:
    """Part of this stage's cache key: the shapes its packages are timed at."""
    return {"timing_shapes": [str(s) for s in timing_shapes(recipe)]}


def _latencies(names: tuple[str, ...], shapes: list[Shape], vocab: int, rounds: int = 3):
    """`latencies(packages)`: each package's best median ms per shape, the packages taking turns."""

    def feeding(package: Callable[..., torch.Tensor]) -> Callable[[dict], np.ndarray]:
        def predict(batch: dict) -> np.ndarray:
            with torch.no_grad():
                return package(*(torch.from_numpy(batch[n]) for n in names)).numpy()

        return predict

    def latencies(packages: list[Callable[..., torch.Tensor]]) -> list[dict[str, float]]:
        predictors = [feeding(package) for package in packages]
        best: list[dict[str, float]] = [{} for _ in packages]
        for shape in shapes:
            for _ in range(rounds):
                for times, predict in zip(best, predictors, strict=True):
                    ms = measure_latency(predict, shape, vocab, warmup=2, repeats=5).median_ms
                    times[str(shape)] = min(ms, times.get(str(shape), ms))
        return best

    return latencies


def _aot_compile(
    program: torch.export.ExportedProgram, out: Path, batches, reference: np.ndarray, ctx: StageContext
) -> dict:
    """AOTInductor's package at out/AOTI: each asked-for setting compiled, those whose dev labels stay
    with the program's (`reference`) timed together at the targets' latency shapes, the fastest served;
    where none can be built or none agrees, why (the portable program is served)."""
    spec = ctx.spec
    (out / AOTI).unlink(missing_ok=True)  # the runtime serves a package wherever one lies
    t0 = time.perf_counter()
    names = tuple(json.loads((out / "program.json").read_text())["inputs"])
    vocab = int(json.loads((out / "config.json").read_text()).get("vocab_size", 1000))
    labels_of_candidates: list[np.ndarray] = []  # in build order, as its candidate rows

    def agreement(package: Callable[..., torch.Tensor]) -> float:
        labels_of_candidates.append(_predict(package, batches))
        return float((labels_of_candidates[-1] == reference).mean())

    try:
        candidates, chosen = inductor.build_fastest(
            program,
            out / AOTI,
            inductor.settings_to_try(autotune=spec.max_autotune, fuse_post_ops=spec.fuse_post_ops),
            agreement=agreement,
            latencies=_latencies(names, timing_shapes(ctx.recipe), vocab),
            min_agreement=MIN_PACKAGE_AGREEMENT,
        )
    except Exception as exc:  # no C++ compiler, an op Inductor cannot lower: keep the portable program
        for stray in out.glob("*.pt2"):
            if stray.name != "model.pt2":
                stray.unlink()
        return {"built": False, "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
    if chosen is None:
        return {
            "built": False,
            "reason": f"every compiled package disagreed with the program on the dev labels "
            f"(below {MIN_PACKAGE_AGREEMENT:.0%})",
            "candidates": candidates,
        }
    labels = labels_of_candidates[candidates.index(chosen)]
    return {
        "built": True,
        "autotune": chosen["autotune"],
        "fuse_post_ops": chosen["fuse_post_ops"],
        "seconds": round(time.perf_counter() - t0, 2),
        "int8_gemm_kernels": inductor.int8_gemm_kernels(out / AOTI),
        "label_agreement_with_program": chosen["label_agreement_with_program"],
        "dev_labels_sha256": hashlib.sha256(labels.astype(np.int64).tobytes()).hexdigest(),
        "candidates": candidates,
    }


def run(ctx: StageContext[TorchInt8Spec]) -> StageResult:
    """Autotune, save the best program, and prove it reloads to the labels it gave here."""
    spec = ctx.spec
    source = ctx.inputs["checkpoint"].path
    tokenizer = load_tokenizer(source)
    pad_id = tokenizer.pad_token_id or 0
    model = load_classifier(source).float().cpu().eval()
    names = nc.input_names(forward_inputs(model))
    dev = ctx.splits.dev
    ids = tokenize(tokenizer, dev.texts, ctx.recipe.data.max_length)
    n_eval = min(spec.eval_rows or len(ids), len(ids))
    eval_batches = _batches(ids[:n_eval], pad_id, names)
    calibration = _batches(ids[: min(spec.calibration_rows, len(ids))], pad_id, names)
    labels = np.asarray(dev.labels[:n_eval])
    n_labels = int(model.config.num_labels)
    metric_name = ctx.recipe.evaluation.metric

    def evaluate(fn: Callable[..., torch.Tensor]) -> float:
        return metric(metric_name, labels, _predict(fn, eval_batches), n_labels)

    def calibrate(fn: Callable[..., torch.Tensor]) -> None:
        for b in calibration:
            fn(*b)

    example = pad_batch_rows(ids, pad_id, names)
    options: dict[str, list[Any]] = {
        "act_sym": list(spec.act_sym),
        "act_algo": list(spec.act_algo),
        "w_granularity": list(spec.w_granularity),
    }
    with ctx.progress.bar("Neural Compressor autotune (PT2E)", 1) as advance:
        try:
            tuned = nc.tune(
                model,
                names,
                example,
                options=options,
                modes=tuple(dict.fromkeys(spec.modes)),
                evaluate=evaluate,
                calibrate=calibrate,
                max_drop=spec.max_accuracy_drop / 100,
                max_trials=spec.max_trials,
            )
        except RuntimeError as exc:
            raise StageFailed(f"torch_int8: {exc}") from None
        advance()
    out = ctx.out_dir / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.export.save(tuned.program, out / "model.pt2")
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    chosen = max(tuned.trials, key=lambda t: t["dev_metric"]) if tuned.trials else None
    (out / "program.json").write_text(
        json.dumps(
            {
                "format": "torch.export ExportedProgram",
                "load": "import torch.ao.quantization.fx._decomposed; torch.export.load(path).module()",
                "inputs": list(names),
                "dynamic_axes": {"0": "batch", "1": "sequence"},
                "neural_compressor": nc.version(),
                "torch": torch.__version__,
                "config": chosen["config"] if chosen else None,
            },
            indent=2,
        )
        + "\n"
    )
    stage_labels = _predict(tuned.program.module(), eval_batches)
    reloaded = _predict(torch.export.load(out / "model.pt2").module(), eval_batches)
    seconds = {**tuned.seconds, "save": round(time.perf_counter() - t0, 2)}
    aoti = _aot_compile(tuned.program, out, eval_batches, stage_labels, ctx) if spec.aot_inductor else None
    agreement = float((stage_labels == reloaded).mean())
    metrics = {
        "neural_compressor": nc.version(),
        "dev_rows": n_eval,
        "calibration_rows": min(spec.calibration_rows, len(ids)),
        "baseline_dev_metric": round(tuned.baseline, 6),
        "trials": tuned.trials,
        "chosen_trial": chosen["trial"] if chosen else None,
        "met_on_dev": bool(chosen and chosen["passed"]),
        "seconds": seconds,
        "reload_label_agreement": agreement,
        # the labels the program gave here on the dev rows (int64, in row order): a reload elsewhere
        # can be checked against them
        "dev_labels_sha256": hashlib.sha256(stage_labels.astype(np.int64).tobytes()).hexdigest(),
        "aot_inductor": aoti,
        "served": AOTI if aoti and aoti["built"] else "model.pt2",
    }
    if agreement < 1.0:
        raise StageFailed(
            f"torch_int8: the saved program reloads to other labels ({agreement:.1%} kept)", metrics
        )
    # autotune keeps the best trial even when none met the loss on dev: the stage's budget on the test
    # rows (the stage table's row) and the targets' gates decide, not this
    made = NewArtifact("torch-int8", "torch", "int8", FOLDER)
    return StageResult(artifacts=[made], metrics=metrics)


def pad_batch_rows(ids: list[list[int]], pad_id: int, names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    """The first two rows (two: a batch of one would fix the batch axis) as tensors in `names` order."""
    rows = ids[:2] if len(ids) >= 2 else ids * 2
    batch = pad_batch(rows, pad_id)
    return tuple(torch.from_numpy(batch[n]) for n in names)
