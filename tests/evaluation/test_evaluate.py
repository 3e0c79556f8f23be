import numpy as np
import pytest

from compress.evaluation.evaluate import measure_latency
from compress.recipe.schema import Shape
from compress.verdict.metrics import accuracy, macro_f1


@pytest.mark.parametrize(
    "labels,preds,acc,f1",
    [
        ([0, 1, 0, 1], [0, 1, 0, 1], 1.0, 1.0),
        ([0, 1, 0, 1], [1, 0, 1, 0], 0.0, 0.0),
        # all predicted 0: class 0 F1 = 2*2/(2*2+2+0) = 2/3, class 1 F1 = 0
        ([0, 0, 1, 1], [0, 0, 0, 0], 0.5, 1 / 3),
        # a class never present in truth or predictions does not count
        ([0, 1], [0, 1], 1.0, 1.0),
    ],
)
def test_metrics(labels, preds, acc, f1):
    labels, preds = np.asarray(labels), np.asarray(preds)
    assert accuracy(labels, preds) == pytest.approx(acc)
    assert macro_f1(labels, preds, num_labels=3) == pytest.approx(f1)


def test_empty_set_is_an_error():
    with pytest.raises(ValueError):
        accuracy(np.array([]), np.array([]))


def test_latency_feeds_the_stated_shape():
    seen = []

    def predict(batch):
        seen.append(batch["input_ids"].shape)
        return np.zeros((batch["input_ids"].shape[0], 2))

    out = measure_latency(predict, Shape(4, 16), vocab=30522, warmup=2, repeats=3)
    assert seen == [(4, 16)] * 5
    assert out.batch == 4 and out.sequence == 16 and out.shape == "4x16"
    assert 0 <= out.median_ms <= out.p90_ms


def test_latency_ids_stay_inside_a_small_vocabulary():
    """A model with fewer than 1,000 tokens (a tiny test tokenizer) is timed on ids it has."""
    seen = []

    def predict(batch):
        seen.append(int(batch["input_ids"].max()))
        return np.zeros((1, 2))

    measure_latency(predict, Shape(1, 64), vocab=300, warmup=0, repeats=2)
    assert max(seen) < 300
