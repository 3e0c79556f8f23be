"""The judge as a specification: targets x measurements x baseline x previous run -> verdicts.

Pure, so each case is a few numbers: 100 test rows, a reference that is right on the first 90, and a
candidate whose answers differ from it on a chosen number of rows."""

from dataclasses import dataclass, field

import numpy as np
import pytest

from compress.core.records import Evaluation, Latency, ReleaseMatrix, ShapeResult, Tolerances
from compress.pipeline.judge import Baseline, Candidate, judge, stage_budget_gate
from compress.recipe.schema import EvaluationSpec, Target
from tests import factories

ROWS = 100
LABELS = np.ones(ROWS, dtype=np.int64)
REFERENCE = np.array([1] * 90 + [0] * 10)  # 0.90 accuracy
BASELINE = Baseline(0.90, "finetune torch/fp32", REFERENCE)


def answers(wrong_more: int) -> np.ndarray:
    """The reference's answers with `wrong_more` of its right rows turned wrong (negative: right)."""
    out = REFERENCE.copy()
    if wrong_more > 0:
        out[:wrong_more] = 0
    elif wrong_more < 0:
        out[90 : 90 - wrong_more] = 1
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
    Case("one row worse, within a one-point budget", target(), candidate(1), "pass", []),
    Case("two rows worse, over a one-point budget", target(), candidate(2), "fail", ["accuracy"]),
    Case("better than the reference", target(max_accuracy_drop=0.0), candidate(-3), "pass", []),
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
        candidate(2),
        "fail",
        ["accuracy", "agreement"],
    ),
    Case("changed labels within the limit", target(max_disagreement=0.02), candidate(1), "pass", []),
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
        "upper decision: a point drop in budget whose interval is not",
        target(decision="upper"),
        candidate(1),
        "fail",
        ["accuracy"],
    ),
    Case(
        "a pinned baseline has no reference answers to compare labels with",
        target(max_disagreement=0.5),
        candidate(0),
        "fail",
        ["agreement"],
        baseline=Baseline(0.90, "recipe (evaluation.baseline)"),
    ),
    Case(
        "regression alone fails the target",
        target(),
        candidate(1),
        "fail",
        ["regression"],
        previous={"metric": 0.92},
    ),
    Case("no regression beyond tolerance", target(), candidate(1), "pass", [], previous={"metric": 0.894}),
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
    assert record.metric == 0.89 and record.drop == pytest.approx(1.0) and record.size_mb == 12.5
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
