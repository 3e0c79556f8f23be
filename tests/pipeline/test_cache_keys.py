"""A stage's cache key changes with everything that can change what the stage makes, and with
nothing else: its table, the data files, its input model, the toolchain, the number of training
processes, and (for engines) the TensorRT version and GPU an engine is built for."""

import dataclasses
from pathlib import Path

import pytest

from compress.core.artifact import Artifact
from compress.core.progress import Reporter
from compress.core.records import CpuInfo, DataRecord, Environment
from compress.models import distributed
from compress.pipeline.execute import stage_key
from compress.pipeline.state import RunInputs, RunState
from compress.recipe.load import load_recipe
from compress.recipe.stages import BY_NAME
from compress.runtimes import tensorrt_engine
from tests.conftest import smoke_text

ENGINE = (
    '\n[engine]\n\n[[targets]]\nname = "gpu"\nruntime = "tensorrt"\nprecision = "fp16"\n'
    "max_accuracy_drop = 10.0\nallow_proxy = true\n"
)
VERSIONS = {"torch": "2.13.0", "transformers": "4.57.6", "onnx": "1.20", "onnxruntime": "1.32.0"}


@pytest.fixture
def keyed(write_recipe):
    """`key(stage, **changes)`: the stage's key for the smoke recipe (plus an [engine] table), with
    `data`, `versions`, `checkpoint` or `text` (the recipe) changed."""
    checkpoint = Artifact("checkpoint", "torch", "fp32", Path("/x"), "model-a")
    onnx = Artifact("onnx", "onnxruntime", "fp32", Path("/y"), "graph-a")

    def key(stage: str, *, data=None, versions=None, model="model-a", text=None) -> str:
        loaded = load_recipe(write_recipe(text or smoke_text() + ENGINE))
        env = Environment(python="3.11", versions=versions or VERSIONS, cpu=CpuInfo(model="cpu"))
        files = data or {"train": "t1", "dev": "d1", "test": "e1"}
        inputs = RunInputs(loaded, None, 2, env, DataRecord(files=files), Path("/c"), Reporter(quiet=True))
        state = RunState(
            artifacts={"checkpoint": dataclasses.replace(checkpoint, sha256=model), "onnx": onnx}
        )
        return stage_key(BY_NAME[stage], inputs, state)

    return key


STAGES = ["finetune", "prune", "export", "engine", "quantize"]


@pytest.mark.parametrize("stage", STAGES)
def test_the_same_inputs_give_the_same_key(keyed, stage):
    assert keyed(stage) == keyed(stage)


@pytest.mark.parametrize("stage", STAGES)
def test_a_changed_data_file_changes_every_key(keyed, stage):
    assert keyed(stage, data={"train": "t1", "dev": "d2", "test": "e1"}) != keyed(stage)


@pytest.mark.parametrize("stage", STAGES)
def test_a_changed_input_model_changes_every_key(keyed, stage):
    assert keyed(stage, model="model-b") != keyed(stage)


@pytest.mark.parametrize("stage", STAGES)
def test_a_changed_toolchain_version_changes_every_key(keyed, stage):
    assert keyed(stage, versions={**VERSIONS, "onnxruntime": "1.33.0"}) != keyed(stage)


def test_a_changed_table_changes_only_its_stage(keyed):
    text = smoke_text(**{"epochs = 3": "epochs = 4"}) + ENGINE
    assert keyed("finetune", text=text) != keyed("finetune")
    assert keyed("export", text=text) == keyed("export")


@pytest.mark.parametrize("stage,changes", [("finetune", True), ("prune", True), ("export", False)])
def test_the_number_of_training_processes_is_in_the_training_stages_keys(keyed, monkeypatch, stage, changes):
    one = keyed(stage)
    monkeypatch.setattr(distributed, "current", lambda: distributed.World(rank=0, size=2))
    assert (keyed(stage) != one) is changes


def test_the_engine_key_follows_where_an_engine_can_be_built(keyed, monkeypatch):
    """A CPU proxy cached here is not reused on a GPU machine, nor an engine built for one GPU on
    another GPU or TensorRT version."""
    keys = {}
    monkeypatch.setattr(tensorrt_engine, "unavailable", lambda: "no CUDA device")
    keys["no device"] = keyed("engine")
    monkeypatch.setattr(tensorrt_engine, "unavailable", lambda: None)
    for name, gpu, cc, trt in (
        ("h100", "H100", "9.0", "10.9"),
        ("l4", "L4", "8.9", "10.9"),
        ("trt11", "H100", "9.0", "11.0"),
    ):
        device = {"tensorrt": trt, "gpu": gpu, "compute_capability": cc}
        monkeypatch.setattr(tensorrt_engine, "device", lambda device=device: device)
        keys[name] = keyed("engine")
    assert len(set(keys.values())) == 4
    assert keyed("quantize") == keyed("quantize")  # other stages do not depend on the GPU
