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

WEIGHT_SUFFIXES = (".safetensors", ".onnx", ".onnx_data", ".data", ".engine", ".plan")


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
    ids = tokenize(tokenizer, test.texts, max_length)
    pad_id = tokenizer.pad_token_id or 0
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # little padding per batch
    predictions = np.zeros(len(ids), dtype=np.int64)
    batches = [order[i : i + spec.batch_size] for i in range(0, len(order), spec.batch_size)]
    label = f"evaluate {artifact.runtime}/{artifact.precision}"
    with progress.bar(label, len(batches) + len(shapes)) as advance:
        for rows in batches:
            logits = predict(pad_batch([ids[i] for i in rows], pad_id))
            predictions[rows] = logits.argmax(-1)
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
