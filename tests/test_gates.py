from dataclasses import dataclass

import pytest

from compress import gates


@dataclass(frozen=True)
class Case:
    name: str
    baseline: float
    metric: float
    budget: float
    passed: bool
    drop: float


CASES = [
    Case("no change, zero budget", 0.88, 0.88, 0.0, True, 0.0),
    Case("improvement", 0.80, 0.83, 0.0, True, -3.0),
    Case("exactly at budget", 0.90, 0.89, 1.0, True, 1.0),
    Case("float noise at budget", 0.3, 0.3 - 0.001, 0.1, True, 0.1),
    Case("just over budget", 0.90, 0.8899, 1.0, False, 1.01),
    Case("zero baseline", 0.0, 0.0, 0.0, True, 0.0),
    Case("negative budget is unreachable", 0.88, 0.88, -1.0, False, 0.0),
    Case("negative pinned baseline", -0.1, 0.0, 0.0, True, -10.0),
    Case("large drop", 0.92, 0.50, 5.0, False, 42.0),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_accuracy_gate(case):
    result = gates.accuracy_gate(case.baseline, case.metric, case.budget, "accuracy")
    assert result.passed is case.passed
    assert result.value == pytest.approx(case.drop)
    assert ("over by" in result.message) is (not case.passed)


@pytest.mark.parametrize("value,limit,passed", [(10.0, 10.0, True), (9.99, 10.0, True), (10.01, 10.0, False)])
def test_upper_bound_gate(value, limit, passed):
    assert gates.upper_bound_gate("latency", value, limit, "ms").passed is passed


def test_judge_target_only_budgeted_gates():
    kwargs = dict(
        metric_name="accuracy", baseline=0.9, metric=0.9, max_accuracy_drop=0.0, latency_ms=5.0, size_mb=10.0
    )
    only_acc = gates.judge_target(**kwargs, max_latency_ms=None, max_size_mb=None)
    assert [r.gate for r in only_acc] == ["accuracy"]
    all_three = gates.judge_target(**kwargs, max_latency_ms=4.0, max_size_mb=20.0)
    assert [(r.gate, r.passed) for r in all_three] == [("accuracy", True), ("latency", False), ("size", True)]


def test_missing_latency_measurement_fails_a_latency_budget():
    results = gates.judge_target(
        metric_name="accuracy",
        baseline=0.9,
        metric=0.9,
        max_accuracy_drop=0.0,
        latency_ms=None,
        max_latency_ms=10.0,
        size_mb=1.0,
        max_size_mb=None,
    )
    assert gates.target_verdict(results) == "fail"


def test_verdicts():
    assert gates.target_verdict([]) == "fail"
    assert gates.target_verdict([gates.not_built("no GPU")]) == "fail"
    assert gates.overall_verdict([(True, "pass"), (False, "fail")]) == "pass"
    assert gates.overall_verdict([(True, "pass"), (True, "fail")]) == "fail"
    assert gates.overall_verdict([]) == "pass"
    assert gates.overall_verdict([(True, "pass")], failed_stages=1) == "fail"
