"""The pure parts of benchmarks/alternatives.py: MAC counting and the verdict against Optimum."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.alternatives import Model, best_against_optimum, macs_at
from compress.models import pruning


def test_mac_split_adds_up_to_the_pruning_count_plus_pooler_and_head():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48
    )
    model = BertForSequenceClassification(config)
    model.prune_heads({0: [1, 2]})
    linear, attention = macs_at(model, 2, 16)
    head = 2 * (32 * 32 + 32 * 2)
    assert linear + attention == pruning.encoder_macs(model, 2, 16) + head
    assert attention == 2 * (2 * 16 * 16 * 16 + 2 * 16 * 16 * 32)  # layer 0 kept 2 of 4 heads


def model(name: str, family: str, accuracy: float, ms: float, drop: float) -> Model:
    m = Model(name, "onnxruntime", "int8", Path("."), None, family)
    m.row = {"accuracy": accuracy, "drop_points": drop, "1x128": {"median_ms": ms}}
    return m


OPTIMUM = model("optimum", "optimum", 0.88, 20.0, 1.5)


@pytest.mark.parametrize(
    "candidates,speedup,best,faster,not_worse",
    [
        (
            [model("a", "compress", 0.89, 10.0, 0.5), model("b", "compress", 0.87, 5.0, 2.5)],
            1.8,
            "a",
            True,
            True,
        ),
        ([model("a", "compress", 0.87, 10.0, 0.9)], 0.9, "a", False, False),
    ],
)
def test_best_within_budget_against_optimum(candidates, speedup, best, faster, not_worse):
    """The fastest artifact within budget is chosen (b is faster but 2.5 pt down); a loss either way
    is reported as one, not hidden."""
    pairs = {
        f"{m.name} vs optimum": {"1x128": {"speedup": speedup, "p10": 0.5, "p90": 2.0}} for m in candidates
    }
    verdict = best_against_optimum([*candidates, OPTIMUM], OPTIMUM, pairs, budget=1.0)
    assert (verdict["best"], verdict["faster"], verdict["accuracy_equal_or_better"]) == (
        best,
        faster,
        not_worse,
    )
    assert ("faster" in verdict["answer"]) == faster


def test_no_candidate_within_budget_says_so():
    verdict = best_against_optimum([model("a", "compress", 0.8, 1.0, 9.0), OPTIMUM], OPTIMUM, {}, 1.0)
    assert verdict["answer"].startswith("no comparison")
