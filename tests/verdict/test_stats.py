import numpy as np
import pytest

from compress.verdict import stats


def test_identical_models_have_a_zero_interval():
    labels = np.array([0, 1] * 50)
    preds = labels.copy()
    preds[:10] = 1 - preds[:10]
    result = stats.paired_drop(labels, preds, preds)
    assert (result.drop, result.low, result.high, result.disagreements) == (0, 0, 0, 0)
    assert result.mcnemar_p == 1.0 and result.paired


def test_discordant_counts_and_direction():
    labels = np.zeros(100, dtype=int)
    reference = np.zeros(100, dtype=int)
    candidate = reference.copy()
    candidate[:6] = 1  # reference right, candidate wrong
    reference[50:52] = 1  # reference wrong, candidate right
    result = stats.paired_drop(labels, reference, candidate, stats.Bootstrap(resamples=500))
    assert result.drop == pytest.approx(4.0)
    assert (result.reference_right_candidate_wrong, result.reference_wrong_candidate_right) == (6, 2)
    assert result.disagreements == 8
    assert result.low <= 4.0 <= result.high and result.low < result.high


def test_pairing_narrows_the_interval():
    """Most rows agree, so the paired interval is far narrower than a single accuracy's."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 872)
    reference = np.where(rng.random(872) < 0.9, labels, 1 - labels)
    candidate = reference.copy()
    flip = rng.choice(np.flatnonzero(reference == labels), 9, replace=False)
    candidate[flip] = 1 - candidate[flip]
    paired = stats.paired_drop(labels, reference, candidate)
    unpaired = stats.unpaired_drop(float((reference == labels).mean()), labels, candidate)
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)
    assert not unpaired.paired


def test_interval_is_seeded():
    rng = np.random.default_rng(1)
    labels, a, b = (rng.integers(0, 2, 300) for _ in range(3))
    assert stats.paired_drop(labels, a, b, stats.Bootstrap(seed=3)) == stats.paired_drop(
        labels, a, b, stats.Bootstrap(seed=3)
    )


def test_macro_f1_interval():
    rng = np.random.default_rng(2)
    labels, a, b = (rng.integers(0, 3, 200) for _ in range(3))
    result = stats.paired_drop(labels, a, b, stats.Bootstrap(metric="macro_f1", num_labels=3, resamples=200))
    assert result.low <= result.drop <= result.high and result.mcnemar_p is None


@pytest.mark.parametrize("b,c,p", [(0, 0, 1.0), (5, 0, 0.0625), (3, 3, 1.0), (10, 2, 0.0386)])
def test_mcnemar_exact(b, c, p):
    assert stats.mcnemar_exact_p(b, c) == pytest.approx(p, abs=1e-4)


def test_empty_and_mismatched_sets_are_errors():
    with pytest.raises(ValueError, match="empty"):
        stats.paired_drop([], [], [])
    with pytest.raises(ValueError, match="same rows"):
        stats.paired_drop([0, 1], [0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        stats.unpaired_drop(0.9, [], [])


@pytest.mark.parametrize(
    "drop,low,high,budget,expected",
    [
        (1.0, 0.0, 2.0, 1.0, None),  # on the budget: no number of rows decides it
        (0.5, -0.5, 1.5, 1.0, 872 * 4),  # half-width 1.0, margin 0.5
        (0.0, -0.1, 0.1, 1.0, 872),  # already decided: never fewer rows than we have
    ],
)
def test_rows_to_decide(drop, low, high, budget, expected):
    assert stats.rows_to_decide(872, drop, low, high, budget) == expected
