import numpy as np
import pytest

from compress.evaluate import accuracy, macro_f1, measure_latency


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

    out = measure_latency(predict, 4, 16, vocab=30522, warmup=2, repeats=3)
    assert seen == [(4, 16)] * 5
    assert out["batch"] == 4 and out["sequence"] == 16
    assert 0 <= out["median_ms"] <= out["p90_ms"]
