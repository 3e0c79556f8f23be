"""Evaluate one artifact in its own runtime: task metrics on the test split, latency, size."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from compress.core.artifact import Artifact
from compress.core.progress import Reporter
from compress.core.records import Evaluation, Latency
from compress.data.batches import pad_batch, tokenize
from compress.data.splits import Split
from compress.models.loading import load_tokenizer
from compress.recipe.schema import EvaluationSpec, Shape
from compress.runtimes import RUNTIMES, Predict
from compress.verdict.metrics import accuracy, macro_f1

WEIGHT_SUFFIXES = (".pt2", ".safetensors", ".onnx", ".onnx_data", ".data", ".engine", ".plan")


def weights_bytes(folder: Path) -> int:
    """Bytes of the weight files a deployment ships (tokenizer and config excluded)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES)


def measure_latency(predict: Predict, shape: Shape, vocab: int, warmup: int, repeats: int) -> Latency:
    """Median and p90 milliseconds of one forward pass at batch x sequence, after warm-up, on
    seeded random token ids (above the special tokens where the vocabulary is large enough)."""
    batch, sequence = shape
    rng = np.random.default_rng(0)
    ids = rng.integers(1000 if vocab > 1000 else 0, vocab, size=(batch, sequence), dtype=np.int64)
    inputs = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }
    for _ in range(warmup):
        predict(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(inputs)
        times.append((time.perf_counter() - start) * 1000)
    return Latency(
        batch=batch,
        sequence=sequence,
        median_ms=round(float(np.median(times)), 3),
        p90_ms=round(float(np.percentile(times, 90)), 3),
    )


def _batches(
    tokenizer, split: Split, max_length: int, batch_size: int
) -> tuple[list[list[int]], list[list[int]]]:
    """The rows' token ids, and batches of row numbers sorted by length (little padding)."""
    ids = tokenize(tokenizer, split.texts, max_length)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    return ids, [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def predict_labels(
    artifact: Artifact, split: Split, *, max_length: int, batch_size: int, progress: Reporter, label: str
) -> np.ndarray:
    """`artifact`'s predicted label for every row of `split`."""
    predict = RUNTIMES[artifact.runtime](artifact.path)
    tokenizer = load_tokenizer(artifact.path)
    ids, batches = _batches(tokenizer, split, max_length, batch_size)
    predictions = np.zeros(len(ids), dtype=np.int64)
    with progress.bar(label, len(batches)) as advance:
        for rows in batches:
            predictions[rows] = predict(
                pad_batch([ids[i] for i in rows], tokenizer.pad_token_id or 0)
            ).argmax(-1)
            advance()
    return predictions


def evaluate_artifact(
    artifact: Artifact,
    test: Split,
    *,
    num_labels: int,
    max_length: int,
    spec: EvaluationSpec,
    shapes: list[Shape],
    progress: Reporter,
) -> tuple[Evaluation, np.ndarray]:
    """`artifact` on `test`: its evaluation (metrics, latency at every shape in `shapes`, size) and
    its predicted label per row (what paired statistics compare)."""
    predict = RUNTIMES[artifact.runtime](artifact.path)
    tokenizer = load_tokenizer(artifact.path)
    ids, batches = _batches(tokenizer, test, max_length, spec.batch_size)
    predictions = np.zeros(len(ids), dtype=np.int64)
    label = f"evaluate {artifact.runtime}/{artifact.precision}"
    with progress.bar(label, len(batches) + len(shapes)) as advance:
        for rows in batches:
            predictions[rows] = predict(
                pad_batch([ids[i] for i in rows], tokenizer.pad_token_id or 0)
            ).argmax(-1)
            advance()
        latency = {}
        for shape in shapes:
            latency[str(shape)] = measure_latency(
                predict, shape, tokenizer.vocab_size, spec.latency_warmup, spec.latency_repeats
            )
            advance()
    labels = np.asarray(test.labels)
    evaluation = Evaluation(
        runtime=artifact.runtime,
        precision=artifact.precision,
        rows=len(labels),
        accuracy=round(accuracy(labels, predictions), 6),
        macro_f1=round(macro_f1(labels, predictions, num_labels), 6),
        latency=latency,
        size_bytes=weights_bytes(artifact.path),
    )
    return evaluation, predictions
