"""Task metrics over label arrays: what budgets are measured in."""

from __future__ import annotations

import numpy as np


def accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    """Share of rows predicted right."""
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


def metric(name: str, labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> float:
    """The named metric: "accuracy" or "macro_f1"."""
    return accuracy(labels, predictions) if name == "accuracy" else macro_f1(labels, predictions, num_labels)
