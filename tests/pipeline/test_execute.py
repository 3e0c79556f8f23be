"""Stage budgets: declared in the stage table, read by one function, judged on the test rows against
the artifact the stage read, for every stage that has one (engine INT8 included)."""

from pathlib import Path

import numpy as np
import pytest

from compress.core.artifact import Artifact
from compress.core.progress import Reporter
from compress.core.records import ArtifactRecord, CpuInfo, DataRecord, Environment, Evaluation
from compress.pipeline.execute import budget_breach
from compress.pipeline.state import Measured, RunInputs, RunState
from compress.recipe.load import load_recipe
from compress.recipe.schema import EngineInt8Spec, EngineSpec, PruneSpec, QuantizeSpec
from compress.recipe.stages import BY_NAME
from tests.conftest import smoke_text


def evaluation(accuracy: float) -> Evaluation:
    return Evaluation(
        runtime="x", precision="x", rows=1000, accuracy=accuracy, macro_f1=accuracy, latency={}, size_bytes=1
    )


def record(kind: str, precision: str, sha: str) -> ArtifactRecord:
    return ArtifactRecord(
        kind=kind, runtime="tensorrt", precision=precision, folder=kind, sha256=sha, bytes=1
    )


@pytest.fixture
def world(write_recipe):
    loaded = load_recipe(write_recipe(smoke_text()))
    env = Environment(python="3", cpu=CpuInfo(model="m"))
    inputs = RunInputs(loaded, None, 2, env, DataRecord(), Path("/nonexistent"), Reporter(quiet=True))
    state = RunState()
    for sha, accuracy in (("fp32-onnx", 0.900), ("fp16", 0.880), ("int8-ok", 0.896), ("int8-bad", 0.890)):
        state.measured[sha] = Measured(evaluation(accuracy), np.zeros(1))
    before = {"onnx": Artifact("onnx", "onnxruntime", "fp32", Path("/x"), "fp32-onnx")}
    return inputs, state, before


@pytest.mark.parametrize(
    "int8,budget,breach",
    [
        ("int8-ok", 0.5, None),
        ("int8-bad", 0.5, "engine.int8.max_accuracy_drop: against the onnxruntime/fp32 model it read"),
        ("int8-bad", None, None),  # no budget set
        ("int8-bad", 1.5, None),
    ],
)
def test_engine_int8_budget_is_judged_on_the_test_rows(world, int8, budget, breach):
    inputs, state, before = world
    spec = EngineSpec(int8=EngineInt8Spec(max_accuracy_drop=budget))
    made = [record("tensorrt-fp16", "fp16", "fp16"), record("tensorrt-int8", "int8", int8)]
    found = budget_breach(BY_NAME["engine"], spec, made, before, inputs, state)
    # FP16 lost 2 points and has no budget of its own: only the INT8 graph is judged
    assert (found is None) == (breach is None)
    if breach:
        assert found.startswith(breach) and "exceeds budget 0.50 pt" in found


def test_quantize_and_prune_budgets_come_from_their_own_tables(world):
    inputs, state, before = world
    made = [record("onnx", "int8", "int8-bad")]
    assert "quantize.max_accuracy_drop" in budget_breach(
        BY_NAME["quantize"], QuantizeSpec(max_accuracy_drop=0.5), made, before, inputs, state
    )
    assert budget_breach(BY_NAME["quantize"], QuantizeSpec(), made, before, inputs, state) is None
    checkpoint = {"checkpoint": Artifact("checkpoint", "torch", "fp32", Path("/x"), "fp32-onnx")}
    pruned = [record("checkpoint", "fp32", "int8-bad")]
    spec = PruneSpec(heads_fraction=0.5, max_accuracy_drop=0.5)
    assert "prune.max_accuracy_drop" in budget_breach(
        BY_NAME["prune"], spec, pruned, checkpoint, inputs, state
    )
    assert budget_breach(BY_NAME["finetune"], spec, pruned, checkpoint, inputs, state) is None
