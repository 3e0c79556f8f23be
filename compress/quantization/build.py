"""One INT8 build of an FP32 ONNX graph, shared by [quantize] (one per ISA) and [engine] (TensorRT
Q/DQ): quantize, fall back layer by layer to FP32 until the dev rows meet the stage's budget, then
check the chosen model against FP32 on the test rows at every `check_shapes` shape.

`preparing` does what every build of one stage shares (fusion, the dev rows, FP32's answers, the
calibration reader) and removes its scratch files afterwards; `build` makes one model.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compress.core.errors import StageFailed
from compress.core.progress import Reporter
from compress.data.batches import pad_batch, tokenize
from compress.data.splits import Split
from compress.evaluation.parity import dynamic_axes_problems
from compress.evaluation.shapes import matrix_problems, shape_matrix
from compress.models.loading import load_tokenizer
from compress.quantization import fallback
from compress.quantization.onnxrt import (
    LOOKUPS,
    Calibration,
    QuantScheme,
    fuse,
    graph_inputs,
    quantizable_layers,
    quantize,
    quiet,
)
from compress.recipe.schema import Int8SearchSpec
from compress.runtimes import Predict, memoized, onnxruntime_predictor


@dataclass(frozen=True)
class Prepared:
    """What every build of one stage shares: the graph to quantize, the dev rows and FP32's answers."""

    source: Path  # the FP32 ONNX folder (config and tokenizer travel from it)
    graph: Path  # the graph the quantizer reads (fused, or a copy)
    work: Path  # scratch space: trial models, the calibration cache
    fusions: dict
    tokenizer: object
    dev_batches: list[dict]
    sample: list[dict]  # the sensitivity rows
    fp32_dev: np.ndarray
    fp32_sample: np.ndarray
    fp32_at_shapes: Predict
    calibration: Calibration | None
    # layer ranking by harm, measured by the first build that needs one and reused by the others
    # (the ISAs differ in kernels, not in which layers quantization hurts): candidates -> (isa, ranking)
    rankings: dict[tuple[str, ...], tuple[str, list[tuple[str, float]]]] = field(default_factory=dict)


@contextmanager
def quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer warns and logs advice freely; the stages report for themselves."""
    quiet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _logits(folder: Path, batches: list[dict]) -> np.ndarray:
    predict = onnxruntime_predictor(folder)
    return np.concatenate([predict(b) for b in batches])


@contextmanager
def preparing(
    source: Path,
    *,
    fuse_graph: bool,
    static: bool,
    calibration_rows: int,
    dev: Split,
    max_length: int,
    work: Path,
    progress: Reporter,
) -> Iterator[Prepared]:
    """Fuse (or copy) the FP32 graph into `work`, answer the dev rows with it, and read the
    calibration rows for static mode. Dev rows only: the test split is never used to decide.
    The quantizer is quiet inside; the shared scratch files are removed on the way out."""
    with quiet_quantizer():
        tokenizer = load_tokenizer(source)
        pad_id = tokenizer.pad_token_id or 0
        dev_ids = tokenize(tokenizer, dev.texts, max_length)
        dev_batches = [pad_batch(dev_ids[i : i + 64], pad_id) for i in range(0, len(dev_ids), 64)]
        sample = dev_batches[: max(1, calibration_rows // 64)]
        work.mkdir(parents=True, exist_ok=True)
        graph = work / "fused.onnx"
        try:
            with progress.bar(f"quantize: {'fuse, ' if fuse_graph else ''}FP32 answers on dev", 2) as advance:
                if fuse_graph:
                    fusions = fuse(source / "model.onnx", graph)
                else:
                    fusions = {}
                    shutil.copy2(source / "model.onnx", graph)
                advance()
                calibration = None
                if static:
                    names = graph_inputs(graph)
                    calibration = Calibration(dev_ids[:calibration_rows], pad_id, max_length, names)
                prepared = Prepared(
                    source=source,
                    graph=graph,
                    work=work,
                    fusions=fusions,
                    tokenizer=tokenizer,
                    dev_batches=dev_batches,
                    sample=sample,
                    fp32_dev=_logits(source, dev_batches),
                    fp32_sample=_logits(source, sample),
                    fp32_at_shapes=memoized(onnxruntime_predictor(source)),
                    calibration=calibration,
                )
                advance()
            yield prepared
        finally:
            graph.unlink(missing_ok=True)
            (work / "calibration.json").unlink(missing_ok=True)


def _sensitivity(
    progress: Reporter,
    layers: dict[str, str],
    alone: Callable[[tuple[str, ...]], np.ndarray],
    reference: np.ndarray,
) -> list[tuple[str, float]]:
    """Each layer quantized alone: mean squared logit error against FP32 on the calibration rows.
    Most harmful first: those are the layers to keep in FP32."""
    scores = []
    with progress.bar("fallback: layer sensitivity", len(layers)) as advance:
        for layer in layers:
            scores.append((layer, float(np.mean((alone((layer,)) - reference) ** 2))))
            advance()
    return sorted(scores, key=lambda s: -s[1])


@dataclass(frozen=True)
class _Trials:
    """One build's trial models: quantize with some layers in FP32 into a scratch folder, answer rows."""

    prepared: Prepared
    scheme: QuantScheme
    search: Int8SearchSpec
    scratch: Path

    def make(self, dst: Path, fp32_layers: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> None:
        """Quantize the prepared graph into `dst` (deterministic: the same layers, the same model)."""
        quantize(
            self.prepared.graph,
            dst,
            self.scheme,
            method=self.search.calibration,
            calibration=self.prepared.calibration,
            fp32_layers=fp32_layers,
            only=only,
            calibration_cache=self.prepared.work / "calibration.json",
        )

    def logits(self, batches: list[dict], fp32_layers: tuple[str, ...] = (), only=None) -> np.ndarray:
        """A trial model's logits on `batches`."""
        self.make(self.scratch / "model.onnx", fp32_layers, only)
        return _logits(self.scratch, batches)


def _search(
    trials: _Trials, layers: dict[str, str], dev: Split, progress: Reporter
) -> tuple[fallback.SearchResult, list[tuple[str, float]], float]:
    """The fallback on the dev rows: (outcome, the sensitivity ranking if one was needed, FP32's dev
    accuracy)."""
    prepared, search = trials.prepared, trials.search
    dev_labels = np.array(dev.labels)
    fp32_accuracy = float(np.mean(prepared.fp32_dev.argmax(-1) == dev_labels))
    sensitivity: list[tuple[str, float]] = []

    def rank() -> list[str]:
        def alone(only: tuple[str, ...]) -> np.ndarray:
            return trials.logits(prepared.sample, only=only)

        candidates = tuple(sorted(layers))
        if candidates in prepared.rankings:
            measured_on, ranking = prepared.rankings[candidates]
            progress.info(f"  fallback: the layer ranking measured for the {measured_on} build")
        else:
            ranking = _sensitivity(progress, layers, alone, prepared.fp32_sample)
            prepared.rankings[candidates] = (trials.scheme.isa, ranking)
        sensitivity.extend(ranking)
        return fallback.order(sensitivity, free={n for n, op in layers.items() if op in LOOKUPS})

    def evaluate(fp32_layers: tuple[str, ...]) -> tuple[float, float]:
        """Dev accuracy, and label agreement with FP32 on the dev rows; where `fallback_agreement` is
        asked for, the lowest agreement over the check shapes too (only then is it worth their time)."""
        with progress.timed(f"{trials.scheme.isa}: trial with {len(fp32_layers)} FP32 layers"):
            labels = trials.logits(prepared.dev_batches, fp32_layers).argmax(-1)
            accuracy = float(np.mean(labels == dev_labels))
            agreements = [float(np.mean(labels == prepared.fp32_dev.argmax(-1)))]
            if search.fallback_agreement is not None:
                at_shapes = shape_matrix(
                    prepared.fp32_at_shapes,
                    onnxruntime_predictor(trials.scratch),
                    prepared.tokenizer,
                    dev.texts,
                    search.check_shapes,
                    search.check_rows,
                )
                agreements += [r.label_agreement or 0.0 for r in at_shapes.values()]
            agreement = min(agreements)
            progress.info(
                f"  trial: {len(fp32_layers)} of {len(layers)} layers in FP32 -> dev accuracy "
                f"{accuracy:.4f} ({(fp32_accuracy - accuracy) * 100:+.2f} pt), "
                f"{agreement:.2%} labels as FP32"
                + (" (lowest over the check shapes)" if len(agreements) > 1 else "")
            )
            return accuracy, agreement

    outcome = fallback.search(
        reference_accuracy=fp32_accuracy,
        budget=search.max_accuracy_drop,
        min_agreement=search.fallback_agreement,
        max_trials=search.max_trials,
        candidates=len(layers),
        rank=rank,
        evaluate=evaluate,
    )
    return outcome, sensitivity, fp32_accuracy


def build(
    prepared: Prepared,
    scheme: QuantScheme,
    search: Int8SearchSpec,
    *,
    table: str,
    dev: Split,
    test: Split,
    out: Path,
    progress: Reporter,
) -> tuple[dict, list[str]]:
    """One INT8 model in `out` (with config, tokenizer and quantization.json): its metrics and the
    ways it missed `search`'s limits (`table` names the recipe table in messages)."""
    layers = quantizable_layers(prepared.graph, scheme)
    trials = _Trials(prepared, scheme, search, prepared.work / f"scratch-{scheme.isa}")
    for folder in (out, trials.scratch):  # the scratch folder's trial models are not the artifact
        folder.mkdir(parents=True)
        for f in prepared.source.iterdir():  # config and tokenizer travel with the graph
            if f.suffix != ".onnx":
                shutil.copy2(f, folder / f.name)
    progress.info(f"  quantize {scheme.mode} INT8 for {scheme.isa}")
    outcome, sensitivity, fp32_accuracy = _search(trials, layers, dev, progress)
    # the chosen trial (passing, or the best effort) again: quantization is deterministic
    trials.make(out / "model.onnx", outcome.chosen.fp32_layers)
    shutil.rmtree(trials.scratch)

    problems = dynamic_axes_problems(out / "model.onnx")
    if problems:
        raise StageFailed("quantized graph lost its dynamic axes: " + "; ".join(problems))
    bar = f"quantize: {scheme.isa} shape matrix on test rows"
    with progress.bar(bar, len(search.check_shapes)) as advance:
        matrix = shape_matrix(
            prepared.fp32_at_shapes,  # memoized: every build of the stage is checked on the same batches
            onnxruntime_predictor(out),
            prepared.tokenizer,
            test.texts,
            search.check_shapes,
            search.check_rows,
            advance,
        )
    metrics = _metrics(prepared, scheme, search, table, layers, sensitivity, outcome, fp32_accuracy, dev)
    # no latency here: these shapes check answers, and the layout of quantization.json stays fixed
    metrics["shape_matrix"] = {
        shape: r.model_dump(mode="json", exclude={"latency"}) for shape, r in matrix.items()
    }
    metrics["notes"] = _notes(metrics, outcome, len(layers))
    (out / "quantization.json").write_text(json.dumps(metrics, indent=1))
    failures = [
        f"shape matrix vs FP32 ONNX: {p}" for p in matrix_problems(matrix, search.min_label_agreement)
    ]
    if not outcome.met:
        chosen = outcome.chosen
        failures.insert(
            0,
            f"no trial met {_limits(search, table)} on the dev rows in {len(outcome.trials)} trials; best "
            f"effort: drop {chosen.drop:+.2f} pt, {chosen.agreement:.2%} labels as FP32, with "
            f"{len(chosen.fp32_layers)} of {len(layers)} layers in FP32",
        )
    return metrics, failures


def _metrics(
    prepared: Prepared,
    scheme: QuantScheme,
    search: Int8SearchSpec,
    table: str,
    layers: dict[str, str],
    sensitivity: list[tuple[str, float]],
    outcome: fallback.SearchResult,
    fp32_accuracy: float,
    dev: Split,
) -> dict:
    scores = dict(sensitivity)
    ranks = {name: i + 1 for i, (name, _) in enumerate(sensitivity)}
    return {
        "mode": scheme.mode,
        "isa": scheme.isa,
        "activation_type": scheme.activation if scheme.mode == "static" else "QUInt8 (dynamic)",
        "weight_type": scheme.weight,
        "reduce_range": scheme.reduce_range,
        "fusions": prepared.fusions,
        "quantizable_layers": len(layers),
        "fallback": {
            "budget": search.max_accuracy_drop,
            "fallback_agreement": search.fallback_agreement,
            "limits": _limits(search, table),
            "judged_on": f"{len(dev.labels)} dev rows against the FP32 ONNX model",
            "fp32_dev_accuracy": fp32_accuracy,
            "met": outcome.met,
            "trials": [t.to_dict() for t in outcome.trials],
        },
        "sensitivity_measured_for": prepared.rankings[tuple(sorted(layers))][0] if sensitivity else None,
        # every candidate quantized alone, most harmful first (only when the fallback had to rank)
        "sensitivity": [
            {"layer": name, "op": layers[name], "logit_mse_alone": score, "lookup": layers[name] in LOOKUPS}
            for name, score in sensitivity
        ],
        "fp32_layers": [
            {
                "layer": name,
                "why": f"rank {ranks[name]} of {len(layers)} by logit error when quantized alone"
                + ("; a lookup, tried first: in FP32 it costs size, not time" * (layers[name] in LOOKUPS)),
                "logit_mse_alone": scores[name],
            }
            for name in outcome.chosen.fp32_layers
        ],
    }


def _notes(metrics: dict, outcome: fallback.SearchResult, candidates: int) -> list[str]:
    """The lines the report shows under the stage."""
    chosen = outcome.chosen
    searched = (
        f"{'met' if outcome.met else 'MISSED'} {metrics['fallback']['limits']} on dev after "
        f"{len(outcome.trials)} trial(s): drop {chosen.drop:+.2f} pt, {chosen.agreement:.2%} labels "
        f"as FP32, with "
        f"{len(chosen.fp32_layers)} of {candidates} layers in FP32"
        + (f" ({', '.join(chosen.fp32_layers)})" if chosen.fp32_layers else "")
    )
    shapes = ", ".join(
        f"{shape} ERROR"
        if r["error"] is not None
        else f"{shape} {r['label_agreement']:.1%}"
        if r["label_agreement"] is not None
        else f"{shape} no rows"
        for shape, r in metrics["shape_matrix"].items()
    )
    return [
        f"{metrics['mode']} INT8 for {metrics['isa']}; {searched}",
        f"label agreement with FP32 ONNX by batch x sequence: {shapes}",
    ]


def _limits(search: Int8SearchSpec, table: str) -> str:
    limits = []
    if search.max_accuracy_drop is not None:
        limits.append(f"{table}.max_accuracy_drop {search.max_accuracy_drop:.2f} pt")
    if search.fallback_agreement is not None:
        limits.append(f"{table}.fallback_agreement {search.fallback_agreement:.2%} at every check shape")
    return " and ".join(limits) or "no limit (the fully INT8 model is kept)"
