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
    WEIGHT_ONLY,
    Calibration,
    QuantScheme,
    fuse,
    graph_inputs,
    quantizable_layers,
    quantize,
    quiet,
    split_by_form,
)
from compress.quantization.record import described, limits, notes, record
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
    """One build's trial models: quantize with some layers out of INT8 into a scratch folder, answer rows."""

    prepared: Prepared
    scheme: QuantScheme
    search: Int8SearchSpec
    layers: dict[str, str]  # the candidates: name -> op type
    scratch: Path

    def make(
        self,
        dst: Path,
        layers: tuple[str, ...] = (),
        form: str = fallback.FP32,
        only: tuple[str, ...] | None = None,
    ) -> None:
        """Quantize the prepared graph into `dst`, `layers` out of INT8 in `form` (deterministic: the
        same layers, the same model)."""
        forms = split_by_form(layers, form, self.layers)
        quantize(
            self.prepared.graph,
            dst,
            self.scheme,
            method=self.search.calibration,
            calibration=self.prepared.calibration,
            fp32_layers=forms[fallback.FP32],
            weight_only_layers=forms[WEIGHT_ONLY],
            only=only,
            calibration_cache=self.prepared.work / "calibration.json",
        )

    def cheaper_forms(self, layers: tuple[str, ...]) -> tuple[str, ...]:
        """The scheme's cheaper forms than FP32 where one of `layers` can take them."""
        return (
            self.scheme.fallback_forms if split_by_form(layers, WEIGHT_ONLY, self.layers)[WEIGHT_ONLY] else ()
        )

    def logits(
        self, batches: list[dict], layers: tuple[str, ...] = (), form: str = fallback.FP32, only=None
    ) -> np.ndarray:
        """A trial model's logits on `batches`."""
        self.make(self.scratch / "model.onnx", layers, form, only)
        return _logits(self.scratch, batches)


def _search(
    trials: _Trials, dev: Split, progress: Reporter
) -> tuple[fallback.SearchResult, list[tuple[str, float]], float]:
    """The fallback on the dev rows: (outcome, the sensitivity ranking if one was needed, FP32's dev
    accuracy)."""
    prepared, search, layers = trials.prepared, trials.search, trials.layers
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

    def evaluate(out_of_int8: tuple[str, ...], form: str) -> tuple[float, float]:
        """Dev accuracy, and label agreement with FP32 on the dev rows; where `fallback_agreement` is
        asked for, the lowest agreement over the check shapes too (only then is it worth their time)."""
        trial = described(split_by_form(out_of_int8, form, layers))
        with progress.timed(f"{trials.scheme.isa}: trial with {trial}"):
            labels = trials.logits(prepared.dev_batches, out_of_int8, form).argmax(-1)
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
                f"  trial: {trial} of {len(layers)} -> dev accuracy "
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
        cheaper_forms=trials.cheaper_forms,
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
    trials = _Trials(prepared, scheme, search, layers, prepared.work / f"scratch-{scheme.isa}")
    for folder in (out, trials.scratch):  # the scratch folder's trial models are not the artifact
        folder.mkdir(parents=True)
        for f in prepared.source.iterdir():  # config and tokenizer travel with the graph
            if f.suffix != ".onnx":
                shutil.copy2(f, folder / f.name)
    progress.info(f"  quantize {scheme.mode} INT8 for {scheme.isa}")
    outcome, sensitivity, fp32_accuracy = _search(trials, dev, progress)
    # the chosen trial (passing, or the best effort) again: quantization is deterministic
    trials.make(out / "model.onnx", outcome.chosen.layers, outcome.chosen.form)
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
    metrics = record(
        scheme,
        search,
        table,
        layers,
        sensitivity,
        outcome,
        fp32_accuracy=fp32_accuracy,
        dev_rows=len(dev.labels),
        fusions=prepared.fusions,
        sensitivity_measured_for=prepared.rankings[tuple(sorted(layers))][0] if sensitivity else None,
    )
    # no latency here: these shapes check answers, and the layout of quantization.json stays fixed
    metrics["shape_matrix"] = {
        shape: r.model_dump(mode="json", exclude={"latency"}) for shape, r in matrix.items()
    }
    metrics["notes"] = notes(metrics, outcome, len(layers))
    (out / "quantization.json").write_text(json.dumps(metrics, indent=1))
    failures = [
        f"shape matrix vs FP32 ONNX: {p}" for p in matrix_problems(matrix, search.min_label_agreement)
    ]
    if not outcome.met:
        chosen = outcome.chosen
        failures.insert(
            0,
            f"no trial met {limits(search, table)} on the dev rows in {len(outcome.trials)} trials; best "
            f"effort: drop {chosen.drop:+.2f} pt, {chosen.agreement:.2%} labels as FP32, with "
            f"{described(split_by_form(chosen.layers, chosen.form, layers))} of {len(layers)}",
        )
    return metrics, failures
