"""Evaluate one artifact in its own runtime: task metrics on the test split, latency, size."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from compress.data import Split, pad_batch, tokenize
from compress.modeling import load_tokenizer
from compress.recipe import EvaluationSpec
from compress.runtimes import RUNTIMES
from compress.stages import Artifact

WEIGHT_SUFFIXES = (".safetensors", ".onnx", ".onnx_data", ".data", ".engine", ".plan")


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float((labels == predictions).mean())


def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> float:
    """Unweighted mean of per-class F1; a class absent from both truth and predictions is skipped."""
    if len(labels) == 0:
        raise ValueError("macro-F1 of an empty set is undefined")
    scores = []
    for c in range(num_labels):
        tp = int(((predictions == c) & (labels == c)).sum())
        fp = int(((predictions == c) & (labels != c)).sum())
        fn = int(((predictions != c) & (labels == c)).sum())
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def weights_bytes(folder: Path) -> int:
    """Bytes of the weight files a deployment ships (tokenizer and config excluded)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES)


def measure_latency(predict, batch: int, sequence: int, vocab: int, warmup: int, repeats: int):
    """Median and p90 milliseconds of one forward pass at batch x sequence, after warm-up."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, max(1001, vocab), size=(batch, sequence), dtype=np.int64)
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
    return {
        "batch": batch,
        "sequence": sequence,
        "median_ms": round(float(np.median(times)), 3),
        "p90_ms": round(float(np.percentile(times, 90)), 3),
    }


def evaluate_artifact(
    artifact: Artifact,
    test: Split,
    *,
    num_labels: int,
    max_length: int,
    spec: EvaluationSpec,
    shapes: list[tuple[int, int]],
    progress,
) -> dict:
    """Metrics of `artifact` on `test` plus latency at every (batch, sequence) in `shapes`."""
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
        for batch, sequence in shapes:
            latency[f"{batch}x{sequence}"] = measure_latency(
                predict,
                batch,
                sequence,
                tokenizer.vocab_size,
                spec.latency_warmup,
                spec.latency_repeats,
            )
            advance()
    labels = np.asarray(test.labels)
    return {
        "runtime": artifact.runtime,
        "precision": artifact.precision,
        "rows": len(labels),
        "accuracy": round(accuracy(labels, predictions), 6),
        "macro_f1": round(macro_f1(labels, predictions, num_labels), 6),
        "latency": latency,
        "size_bytes": weights_bytes(artifact.path),
        "predictions": predictions.tolist(),
    }
