from dataclasses import dataclass

import pytest

from compress.verdict import gates


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


def judge(**overrides):
    """judge_target on a model that kept the baseline's 0.9, with no latency/size budgets unless given."""
    figures = dict(
        metric_name="accuracy",
        baseline=0.9,
        metric=0.9,
        max_accuracy_drop=1.0,
        latency_ms=None,
        max_latency_ms=None,
        size_mb=1.0,
        max_size_mb=None,
    )
    return gates.judge_target(**{**figures, **overrides})


def test_missing_latency_measurement_fails_a_latency_budget():
    results = judge(max_accuracy_drop=0.0, max_latency_ms=10.0)
    assert gates.target_verdict(results) == "fail"


def test_verdicts():
    passing, failing = (
        gates.not_built("x").model_copy(update={"passed": True, "outcome": "pass"}),
        gates.not_built("x"),
    )
    unsure_fail = gates.accuracy_gate(0.9, 0.9, 1.0, "accuracy", interval=(-1.0, 2.0))
    unsure_pass = gates.accuracy_gate(0.9, 0.9, 1.0, "accuracy", interval=(-1.0, 2.0), on_inconclusive="pass")
    assert gates.target_verdict([]) == "fail"
    assert gates.target_verdict([failing]) == "fail"
    assert gates.target_verdict([passing, unsure_fail]) == "inconclusive"
    assert gates.target_verdict([unsure_pass, failing]) == "fail"
    assert gates.target_verdict([passing], proxy=True) == "proxy"
    assert gates.overall_verdict([(True, [passing]), (False, [failing])]) == "pass"
    assert gates.overall_verdict([(True, [passing]), (True, [failing])]) == "fail"
    assert gates.overall_verdict([(True, [unsure_fail])]) == "fail"
    assert gates.overall_verdict([(True, [unsure_pass])]) == "pass"
    assert gates.overall_verdict([(True, [])]) == "fail"
    assert gates.overall_verdict([]) == "pass"
    assert gates.overall_verdict([(True, [passing])], failed_stages=1) == "fail"


@dataclass(frozen=True)
class OutcomeCase:
    name: str
    metric: float  # the candidate's, against a baseline of 0.90
    interval: tuple[float, float]
    on_inconclusive: str
    outcome: str
    passed: bool
    says: str


OUTCOME_CASES = [
    OutcomeCase("interval within budget", 0.895, (-0.2, 0.6), "fail", "pass", True, "within budget"),
    OutcomeCase("upper bound exactly at budget", 0.895, (0.0, 1.0), "fail", "pass", True, "within budget"),
    OutcomeCase("improvement", 0.92, (-3.5, -0.5), "fail", "pass", True, "drop -2.00 pt"),
    OutcomeCase("interval beyond budget", 0.85, (3.5, 6.5), "pass", "fail", False, "over by 4.00 pt"),
    OutcomeCase("lower bound just over budget", 0.885, (1.01, 2.0), "pass", "fail", False, "exceeds budget"),
    OutcomeCase(
        "straddles, point under: inconclusive",
        0.892,
        (-0.3, 1.9),
        "fail",
        "inconclusive",
        False,
        "INCONCLUSIVE",
    ),
    OutcomeCase(
        "straddles, point over: inconclusive",
        0.888,
        (0.4, 2.0),
        "fail",
        "inconclusive",
        False,
        "INCONCLUSIVE",
    ),
    OutcomeCase(
        "straddles, on_inconclusive = pass",
        0.892,
        (-0.3, 1.9),
        "pass",
        "inconclusive",
        True,
        "on_inconclusive = pass",
    ),
    OutcomeCase(
        "lower bound exactly at budget: inconclusive",
        0.89,
        (1.0, 2.0),
        "fail",
        "inconclusive",
        False,
        "straddles",
    ),
]


@pytest.mark.parametrize("case", OUTCOME_CASES, ids=[c.name for c in OUTCOME_CASES])
def test_accuracy_gate_outcomes(case):
    result = gates.accuracy_gate(
        0.90,
        case.metric,
        1.0,
        "accuracy",
        interval=case.interval,
        on_inconclusive=case.on_inconclusive,
        rows_needed=5000,
    )
    assert result.result == case.outcome and result.passed is case.passed
    assert result.within_noise is (case.outcome == "inconclusive")
    assert case.says in result.message
    assert ("5000 rows would decide it" in result.message) is (case.outcome == "inconclusive")


@dataclass(frozen=True)
class AgreementCase:
    name: str
    changed: int
    rows: int
    limit: float
    outcome: str


AGREEMENT_CASES = [
    AgreementCase("none changed, many rows", 0, 872, 0.01, "pass"),
    AgreementCase("a few changed, far under", 2, 872, 0.02, "pass"),
    AgreementCase("near the limit", 8, 872, 0.01, "inconclusive"),
    AgreementCase("far over", 40, 872, 0.01, "fail"),
    AgreementCase("none changed, too few rows to tell", 0, 50, 0.01, "inconclusive"),
    AgreementCase("every row changed", 10, 10, 0.5, "fail"),
]


@pytest.mark.parametrize("case", AGREEMENT_CASES, ids=[c.name for c in AGREEMENT_CASES])
def test_agreement_gate_outcomes(case):
    result = gates.agreement_gate(case.changed, case.rows, case.limit)
    assert result.result == case.outcome and result.passed is (case.outcome == "pass")
    low, high = gates.wilson_interval(case.changed, case.rows, 0.95)
    assert low <= case.changed / case.rows <= high
    passes = gates.agreement_gate(case.changed, case.rows, case.limit, on_inconclusive="pass")
    assert passes.passed is (case.outcome != "fail")


@pytest.mark.parametrize(
    "k,n,low,high", [(0, 100, 0.0, 0.037), (50, 100, 0.404, 0.596), (100, 100, 0.963, 1.0)]
)
def test_wilson_interval(k, n, low, high):
    got = gates.wilson_interval(k, n, 0.95)
    assert got == pytest.approx((low, high), abs=1e-3)


def test_agreement_gate_without_rows_fails():
    assert not gates.agreement_gate(5, 0, 0.1).passed


def test_judge_target_adds_agreement_only_when_budgeted():
    assert [r.gate for r in judge(latency_ms=1.0, disagreements=(50, 872))] == ["accuracy"]
    results = judge(latency_ms=1.0, disagreements=(50, 872), max_disagreement=0.02)
    assert [(r.gate, r.result) for r in results] == [("accuracy", "pass"), ("agreement", "fail")]
    no_reference = judge(latency_ms=1.0, disagreements=None, max_disagreement=0.02)
    assert not no_reference[1].passed


def test_a_best_effort_artifact_fails_its_target_even_when_its_figures_pass():
    figures = judge()
    assert gates.target_verdict(figures) == "pass"
    stage = gates.stage_failed("quantize", "no trial met quantize.max_accuracy_drop -5.00 pt")
    assert gates.target_verdict([*figures, stage]) == "fail"
    assert stage.gate == "stage" and stage.message.startswith("best-effort artifact: stage 'quantize' failed")


def test_release_matrix_gate():
    ok = gates.release_matrix_gate([], 12)
    assert ok.passed and ok.gate == "shapes"
    problems = [f"{s}: label agreement 0.9 < 0.99" for s in ("1x16", "8x64", "32x128", "32x256", "1x256")]
    bad = gates.release_matrix_gate(problems, 12)
    assert not bad.passed and bad.message.startswith("5 of 12 release-matrix shapes fail: 1x16:")
    assert bad.message.endswith("...") and "1x256" not in bad.message


@pytest.mark.parametrize(
    "allow_proxy,passed,verdict", [(True, True, "proxy"), (False, False, "fail")], ids=["allowed", "refused"]
)
def test_a_proxy_passes_only_when_allowed_and_never_as_pass(allow_proxy, passed, verdict):
    gate = gates.proxy_gate("no CUDA device", allow_proxy)
    assert gate.gate == "built" and gate.passed is passed
    assert gate.message.startswith("not-built: no CUDA device")
    results = [gate, *judge()]
    assert gates.target_verdict(results, proxy=True) == verdict
    assert gates.overall_verdict([(True, results)]) == ("pass" if allow_proxy else "fail")


@pytest.mark.parametrize(
    "confidence,text", [(0.95, "95%"), (0.99, "99%"), (1 - 0.05 / 19, "99.74%"), (0.999, "99.9%")]
)
def test_a_corrected_confidence_is_not_rounded_to_100_percent(confidence, text):
    assert gates.percent(confidence) == text
