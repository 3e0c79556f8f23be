import pytest

from compress.quantization.fallback import fp32_counts, order, search


@pytest.mark.parametrize(
    "candidates,max_trials,expected",
    [
        (27, 8, [0, 1, 2, 4, 8, 16]),
        (27, 6, [0, 1, 2, 4, 8, 16]),
        (27, 3, [0, 1, 2]),
        (5, 10, [0, 1, 2, 4]),  # never all five: that would be the FP32 model
        (1, 6, [0]),
        (0, 6, [0]),
        (27, 1, [0]),
    ],
)
def test_fp32_counts_double_and_never_keep_everything(candidates, max_trials, expected):
    assert fp32_counts(candidates, max_trials) == expected


RANKING = ["attn0", "ffn3", "emb", "ffn1", "pooler"]


def run_search(
    budget, accuracy_by_count, max_trials=6, min_agreement=None, agreement_by_count=None, ranking=RANKING
):
    calls = {"rank": 0, "tried": []}

    def rank():
        calls["rank"] += 1
        return ranking

    def evaluate(layers, form):
        assert form == "fp32"
        calls["tried"].append(layers)
        agreement = (agreement_by_count or {}).get(len(layers), 1.0)
        return accuracy_by_count[len(layers)], agreement

    result = search(
        reference_accuracy=0.90,
        budget=budget,
        min_agreement=min_agreement,
        max_trials=max_trials,
        candidates=len(ranking),
        rank=rank,
        evaluate=evaluate,
    )
    return result, calls


def test_int8_within_budget_needs_no_ranking():
    result, calls = run_search(1.0, {0: 0.895})
    assert result.met and result.chosen.layers == ()
    assert calls["rank"] == 0 and len(result.trials) == 1


def test_fallback_keeps_the_most_sensitive_layers_until_the_budget_holds():
    result, calls = run_search(0.5, {0: 0.88, 1: 0.892, 2: 0.897, 4: 0.899})
    assert result.met
    assert result.chosen.layers == ("attn0", "ffn3")
    assert [len(t.layers) for t in result.trials] == [0, 1, 2]
    assert [t.passed for t in result.trials] == [False, False, True]
    assert result.chosen.drop == pytest.approx(0.3)
    assert calls["rank"] == 1


def test_no_trial_meets_the_budget_best_effort_is_not_a_pass():
    result, _ = run_search(-1.0, {0: 0.88, 1: 0.899, 2: 0.895, 4: 0.899})
    assert not result.met
    assert [len(t.layers) for t in result.trials] == [0, 1, 2, 4]
    # smallest drop; on a tie, the fewest FP32 layers
    assert result.chosen.layers == ("attn0",)
    assert not result.chosen.passed


def test_max_trials_bounds_the_search():
    result, calls = run_search(0.0, {0: 0.88, 1: 0.88, 2: 0.88}, max_trials=2)
    assert not result.met and len(calls["tried"]) == 2


def test_without_a_budget_only_the_int8_trial_runs():
    result, calls = run_search(None, {0: 0.5})
    assert result.met and len(calls["tried"]) == 1 and calls["rank"] == 0


def test_budget_edge_is_inclusive_despite_float_noise():
    # 0.9 - 0.89 = 1.0000000000000009 points in floats: still within a 1.0 budget
    result, _ = run_search(1.0, {0: 0.89})
    assert result.met


def test_accuracy_within_budget_but_too_many_changed_labels_falls_back():
    result, _ = run_search(
        1.0,
        {0: 0.90, 1: 0.90, 2: 0.90},
        min_agreement=0.99,
        agreement_by_count={0: 0.97, 1: 0.985, 2: 0.992},
    )
    assert result.met and len(result.chosen.layers) == 2
    assert [t.passed for t in result.trials] == [False, False, True]


def test_agreement_alone_is_a_limit_and_breaks_ties_in_the_best_effort():
    result, calls = run_search(
        None,
        {0: 0.9, 1: 0.9, 2: 0.9},
        max_trials=3,
        min_agreement=1.0,
        agreement_by_count={0: 0.95, 1: 0.99, 2: 0.98},
    )
    assert not result.met and len(calls["tried"]) == 3
    assert result.chosen.layers == ("attn0",)


def test_agreement_edge_is_inclusive_despite_float_noise():
    limit = 1 - (1 - 0.93) / 2  # 0.9650000000000001 in floats
    result, _ = run_search(None, {0: 0.9}, min_agreement=limit, agreement_by_count={0: 965 / 1000})
    assert result.met


TWENTY = [f"layer{i}" for i in range(20)]


def search_with_forms(passes, *, accuracy, max_trials=8, forms=("weight_only",), ranking=TWENTY):
    """A search whose builds offer `forms`; `passes(layers, form)` says whether a trial keeps FP32's
    accuracy (0.90) or loses five points."""
    tried = []

    def evaluate(layers, form):
        tried.append((len(layers), form))
        return (0.90 if passes(len(layers), form) else 0.85), 1.0

    result = search(
        reference_accuracy=0.90,
        budget=accuracy,
        min_agreement=None,
        max_trials=max_trials,
        candidates=len(ranking),
        rank=lambda: ranking,
        evaluate=evaluate,
        cheaper_forms=lambda layers: forms,
    )
    return result, tried


def test_the_layers_that_must_leave_int8_try_the_cheaper_form_and_keep_it_when_it_passes():
    result, tried = search_with_forms(lambda n, form: n >= 2, accuracy=1.0)
    assert tried == [(0, "fp32"), (1, "fp32"), (2, "fp32"), (2, "weight_only")]
    assert result.met and result.chosen.form == "weight_only" and result.chosen.layers == tuple(TWENTY[:2])


def test_a_cheaper_form_that_misses_leaves_those_layers_in_fp32():
    result, tried = search_with_forms(lambda n, form: n >= 2 and form == "fp32", accuracy=1.0)
    assert tried[-1] == (2, "weight_only")
    assert result.met and result.chosen.form == "fp32" and len(result.chosen.layers) == 2


def test_forms_are_tried_cheapest_first_and_the_first_pass_wins():
    result, tried = search_with_forms(lambda n, form: n >= 1, accuracy=1.0, forms=("int4", "weight_only"))
    assert tried == [(0, "fp32"), (1, "fp32"), (1, "int4")] and result.chosen.form == "int4"


def test_no_cheaper_trial_when_the_layers_cannot_take_one_or_int8_passes():
    result, tried = search_with_forms(lambda n, form: n >= 1, accuracy=1.0, forms=())
    assert tried == [(0, "fp32"), (1, "fp32")] and result.chosen.form == "fp32"
    result, tried = search_with_forms(lambda n, form: True, accuracy=1.0)
    assert tried == [(0, "fp32")] and result.chosen.layers == ()


def test_the_bisection_leaves_the_last_trial_to_the_cheaper_form():
    # FP32 passes from 6 layers on: 0, 1, 2, 4, 8, then bisecting would take 6 and 5 - one is left
    result, tried = search_with_forms(lambda n, form: n >= 6, accuracy=1.0, max_trials=7)
    assert tried == [
        (0, "fp32"),
        (1, "fp32"),
        (2, "fp32"),
        (4, "fp32"),
        (8, "fp32"),
        (6, "fp32"),
        (6, "weight_only"),
    ]
    assert result.chosen.form == "weight_only" and len(result.chosen.layers) == 6


def test_a_search_that_never_passes_tries_no_cheaper_form():
    result, tried = search_with_forms(lambda n, form: False, accuracy=1.0, max_trials=4)
    assert not result.met and all(form == "fp32" for _, form in tried)


def test_after_a_pass_bisects_back_to_the_fewest_layers_that_pass():
    accuracy = {0: 0.85, 1: 0.86, 2: 0.87, 4: 0.88, 8: 0.90, 6: 0.899, 5: 0.88}
    result, calls = run_search(0.5, accuracy, max_trials=8, ranking=TWENTY)
    assert [len(t) for t in calls["tried"]] == [0, 1, 2, 4, 8, 6, 5]
    assert result.met and result.chosen.layers == tuple(TWENTY[:6])


def test_bisection_stops_at_max_trials_with_the_smallest_pass_so_far():
    accuracy = {0: 0.85, 1: 0.86, 2: 0.87, 4: 0.88, 8: 0.90, 6: 0.899}
    result, _ = run_search(0.5, accuracy, max_trials=6, ranking=TWENTY)
    assert [len(t.layers) for t in result.trials] == [0, 1, 2, 4, 8, 6]
    assert len(result.chosen.layers) == 6


@pytest.mark.parametrize(
    ("sensitivity", "free", "expected"),
    [
        ([("a", 0.1), ("b", 0.5), ("emb", 0.2)], {"emb"}, ["emb", "b", "a"]),
        ([("a", 0.1), ("b", 0.5), ("emb", 0.0)], {"emb"}, ["emb", "b", "a"]),  # free: costs no time
        ([("a", 0.1), ("b", 0.5)], set(), ["b", "a"]),
        ([("e1", 0.1), ("a", 0.9), ("e2", 0.3)], {"e1", "e2"}, ["e2", "e1", "a"]),
    ],
)
def test_fallback_order_puts_layers_that_cost_no_time_first(sensitivity, free, expected):
    assert order(sensitivity, free) == expected
