"""The judge as a specification: targets x measurements x baseline x previous run x pool -> verdicts.

Pure, so each case is a few numbers: 2,000 test rows, a reference that is right on the first 1,800,
and a candidate whose answers differ from it on a chosen number of rows."""

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pytest

from compress.core.records import Evaluation, Latency, ReleaseMatrix, ShapeResult, Tolerances
from compress.pipeline.judge import Baseline, Candidate, Pool, judge, stage_budget_gate
from compress.recipe.schema import EvaluationSpec, Target
from tests import factories

ROWS = 2000
LABELS = np.ones(ROWS, dtype=np.int64)
REFERENCE = np.array([1] * 1800 + [0] * 200)  # 0.90 accuracy
BASELINE = Baseline(0.90, "finetune torch/fp32", REFERENCE)


def answers(wrong_more: int, rows: int = ROWS, right: int = 1800) -> np.ndarray:
    """The reference's answers with `wrong_more` of its right rows turned wrong (negative: right)."""
    out = np.array([1] * right + [0] * (rows - right))
    if wrong_more > 0:
        out[:wrong_more] = 0
    elif wrong_more < 0:
        out[right : right - wrong_more] = 1
    return out


def candidate(wrong_more: int = 0, *, ms: float = 5.0, mb: float = 10.0, **fields) -> Candidate:
    predictions = answers(wrong_more)
    accuracy = float((predictions == LABELS).mean())
    evaluation = Evaluation(
        runtime="onnxruntime",
        precision="int8",
        rows=ROWS,
        accuracy=accuracy,
        macro_f1=accuracy,
        latency={"1x128": Latency(batch=1, sequence=128, median_ms=ms, p90_ms=ms)},
        size_bytes=int(mb * 1e6),
        release_matrix=fields.pop("release", None),
    )
    return Candidate(
        stage="quantize", artifact_sha256="new", evaluation=evaluation, predictions=predictions, **fields
    )


def target(**fields) -> Target:
    return Target.model_validate(
        {"name": "t", "runtime": "onnxruntime", "precision": "int8", "max_accuracy_drop": 1.0, **fields}
    )


BROKEN_MATRIX = ReleaseMatrix(
    reference="r",
    shapes={"1x16": ShapeResult(rows=8, label_agreement=0.5, max_abs_logit_diff=1.0)},
    problems=("1x16: label agreement 0.5000 < 0.95",),
)


@dataclass(frozen=True)
class Case:
    name: str
    target: Target
    candidate: Candidate | str
    verdict: str
    failing: list[str]  # gates that fail, in order
    baseline: Baseline | str = BASELINE
    previous: dict | None = None  # a previous run's target figures (regression)
    tolerances: Tolerances = field(default_factory=Tolerances)


CASES = [
    Case("same answers as the reference", target(), candidate(0), "pass", []),
    Case("a quarter point worse, one-point budget", target(), candidate(5), "pass", []),
    Case("three points worse", target(), candidate(60), "fail", ["accuracy"]),
    Case("near the budget: the rows cannot tell", target(), candidate(18), "inconclusive", ["accuracy"]),
    Case(
        "near the budget, on_inconclusive = pass",
        target(on_inconclusive="pass"),
        candidate(18),
        "inconclusive",
        [],
    ),
    Case("better than the reference", target(max_accuracy_drop=0.0), candidate(-30), "pass", []),
    Case(
        "within budget but slower than allowed",
        target(max_latency_ms=4.0),
        candidate(0, ms=5.0),
        "fail",
        ["latency"],
    ),
    Case(
        "within budget but larger than allowed",
        target(max_size_mb=5.0),
        candidate(0, mb=9.0),
        "fail",
        ["size"],
    ),
    Case(
        "too many changed labels",
        target(max_disagreement=0.01),
        candidate(60),
        "fail",
        ["accuracy", "agreement"],
    ),
    Case("changed labels within the limit", target(max_disagreement=0.02), candidate(5), "pass", []),
    Case(
        "changed labels near the limit",
        target(max_disagreement=0.01, max_accuracy_drop=5.0),
        candidate(20),
        "inconclusive",
        ["agreement"],
    ),
    Case("not built", target(), "stage 'quantize' failed: boom", "fail", ["built"]),
    Case("no baseline", target(), candidate(0), "fail", ["built"], baseline="no baseline metric"),
    Case(
        "best effort from a failed stage",
        target(),
        candidate(0, stage_failure="no trial met quantize.max_accuracy_drop"),
        "fail",
        ["stage"],
    ),
    Case("a release shape that fails", target(), candidate(0, release=BROKEN_MATRIX), "fail", ["shapes"]),
    Case(
        "a proxy the recipe accepts: latency and size not judged",
        target(allow_proxy=True, max_latency_ms=1.0, max_size_mb=1.0),
        candidate(0, proxy="no CUDA device"),
        "proxy",
        [],
    ),
    Case(
        "a proxy the recipe does not accept",
        target(),
        candidate(0, proxy="no CUDA device"),
        "fail",
        ["built"],
    ),
    Case(
        "a pinned baseline has no reference answers to compare labels with",
        target(max_disagreement=0.5, max_accuracy_drop=3.0),
        candidate(0),
        "fail",
        ["agreement"],
        baseline=Baseline(0.90, "recipe (evaluation.baseline)"),
    ),
    Case(
        "a pinned baseline: the candidate's own interval decides",
        target(max_accuracy_drop=3.0),
        candidate(0),
        "pass",
        [],
        baseline=Baseline(0.90, "recipe (evaluation.baseline)"),
    ),
    Case(
        "regression alone fails the target",
        target(),
        candidate(5),
        "fail",
        ["regression"],
        previous={"metric": 0.92},
    ),
    Case("no regression beyond tolerance", target(), candidate(5), "pass", [], previous={"metric": 0.899}),
    Case(
        "regression on size alone",
        target(),
        candidate(0, mb=20.0),
        "fail",
        ["regression"],
        previous={"metric": 0.90, "size_mb": 10.0},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_judge(case):
    previous = None
    if case.previous is not None:
        previous = factories.manifest(run_id="old", targets=[factories.target_json("t", **case.previous)])
    judged = judge(
        [case.target],
        {"t": case.candidate},
        case.baseline,
        evaluation=EvaluationSpec(bootstrap_resamples=500),
        labels=LABELS.tolist(),
        n_labels=2,
        previous=previous,
        tolerances=case.tolerances,
    )
    (record,) = judged.targets
    assert record.verdict == case.verdict
    assert [g.gate for g in record.gates if not g.passed] == case.failing
    assert (judged.regression is None) == (previous is None)
    if previous is not None:
        (row,) = judged.regression
        assert (row.status == "regressed") == ("regression" in case.failing)
        assert all(g.message.startswith("vs old: ") for g in record.gates if g.gate == "regression")


def test_records_carry_the_figures_the_report_shows():
    judged = judge(
        [target(max_latency_ms=10.0)],
        {"t": candidate(1, ms=5.0, mb=12.5, perturbed=0.5)},
        BASELINE,
        evaluation=EvaluationSpec(bootstrap_resamples=500),
        labels=LABELS.tolist(),
        n_labels=2,
    )
    (record,) = judged.targets
    assert record.metric == 0.8995 and record.drop == pytest.approx(0.05) and record.size_mb == 12.5
    assert record.latency.median_ms == 5.0 and record.perturbed_weights == 0.5
    assert record.statistics.paired and record.statistics.disagreements == 1
    assert record.baseline == 0.90 and record.baseline_from == "finetune torch/fp32"


def test_a_target_the_previous_run_had_and_this_one_lacks_is_listed_as_removed():
    previous = factories.manifest(
        run_id="old",
        targets=[
            factories.target_json("t", metric=0.9, artifact_sha256="new"),
            factories.target_json("gone", metric=0.9),
        ],
    )
    judged = judge(
        [target()],
        {"t": candidate(0)},
        BASELINE,
        evaluation=EvaluationSpec(bootstrap_resamples=500),
        labels=LABELS.tolist(),
        n_labels=2,
        previous=previous,
    )
    assert [(r.name, r.status) for r in judged.regression] == [("t", "unchanged"), ("gone", "removed")]


@pytest.mark.parametrize("metric,passed", [(0.895, True), (0.894, False)])
def test_stage_budget_gate_names_the_key_and_what_it_was_measured_against(metric, passed):
    gate = stage_budget_gate(
        key="engine.int8.max_accuracy_drop",
        budget=0.5,
        reference=0.90,
        metric=metric,
        metric_name="accuracy",
        against="the onnxruntime/fp32 model it read",
    )
    assert gate.passed is passed
    assert gate.message.startswith(
        "engine.int8.max_accuracy_drop: against the onnxruntime/fp32 model it read on the test rows: accuracy"
    )


POOL_ROWS = 20_000


def pool_case(wrong_more_per_10k: int, chunk: int = 2000):
    """A candidate near a one-point budget on the test rows, with the pool's answers: the reference
    right on 90% of the pool, the candidate `wrong_more_per_10k` rows in 10,000 worse."""
    pool = Pool(np.ones(POOL_ROWS, dtype=np.int64), chunk)
    ref_pool = answers(0, POOL_ROWS, 18_000)
    cand_pool = answers(2 * wrong_more_per_10k, POOL_ROWS, 18_000)
    baseline = dataclasses.replace(BASELINE, pool_predictions=ref_pool)
    near = candidate(18)  # 0.9 points worse on the test rows: inconclusive alone
    return pool, baseline, dataclasses.replace(near, pool_predictions=cand_pool)


def judge_with(pool, baseline, cand, **fields):
    (record,) = judge(
        [target(**fields)],
        {"t": cand},
        baseline,
        evaluation=EvaluationSpec(bootstrap_resamples=500),
        labels=LABELS.tolist(),
        n_labels=2,
        pool=pool,
    ).targets
    return record


@pytest.mark.parametrize(
    "worse,outcome", [(20, "pass"), (250, "fail")], ids=["0.2 points worse on the pool", "2.5 points worse"]
)
def test_an_inconclusive_gate_draws_pool_rows_until_it_can_tell(worse, outcome):
    pool, baseline, cand = pool_case(worse)
    record = judge_with(pool, baseline, cand)
    (accuracy,) = [g for g in record.gates if g.gate == "accuracy"]
    assert accuracy.result == outcome and record.verdict == outcome
    st = record.statistics
    assert st.pool_rows > 0 and st.looks >= 2 and st.rows == ROWS + st.pool_rows == accuracy.rows
    assert st.confidence == pytest.approx(1 - 0.05 / pool.looks)  # Bonferroni over the looks
    assert "with pool rows" in accuracy.message


def test_without_the_pool_answers_only_the_test_rows_are_used_at_the_corrected_confidence():
    pool, baseline, cand = pool_case(20)
    record = judge_with(pool, baseline, dataclasses.replace(cand, pool_predictions=None))
    assert record.statistics.pool_rows == 0 and record.statistics.looks == 1
    assert record.statistics.confidence == pytest.approx(1 - 0.05 / 11)  # 1 + 20,000 / 2,000 looks
    assert record.verdict == "inconclusive"


def test_a_gate_the_test_rows_decide_draws_nothing():
    pool, baseline, cand = pool_case(20)
    record = judge_with(pool, baseline, dataclasses.replace(cand, predictions=answers(0)))
    assert record.statistics.pool_rows == 0 and record.verdict == "pass"


def test_the_agreement_gate_draws_on_the_pool_too():
    pool, baseline, cand = pool_case(20)
    record = judge_with(pool, baseline, cand, max_disagreement=0.012, max_accuracy_drop=5.0)
    (agreement,) = [g for g in record.gates if g.gate == "agreement"]
    assert agreement.result == "pass" and agreement.rows > ROWS
