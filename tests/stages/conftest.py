"""Stage modules run directly: a tiny random BERT checkpoint, a few hundred SST-2 rows, and a
StageContext built the way the runner builds one."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from compress.core.artifact import Artifact
from compress.core.hashing import tree_sha256
from compress.core.progress import Reporter
from compress.core.stage import StageContext
from compress.data.splits import Splits, load_splits
from compress.models.loading import build_source_model
from compress.recipe.schema import ModelSpec, Recipe, TinyBert
from tests.conftest import DATA

RECIPE = {
    "model": {
        "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    },
    "data": {
        "train": str(DATA / "train.tsv"),
        "dev": str(DATA / "dev.tsv"),
        "test": str(DATA / "test.tsv"),
        "max_length": 32,
        "train_rows": 256,
        "dev_rows": 96,
        "test_rows": 96,
    },
    "targets": [{"name": "t", "runtime": "torch", "precision": "fp32", "max_accuracy_drop": 100.0}],
}


@pytest.fixture(scope="session")
def tiny_recipe() -> Recipe:
    return Recipe.model_validate(RECIPE)


@pytest.fixture(scope="session")
def tiny_splits(tiny_recipe) -> Splits:
    return load_splits(tiny_recipe.data)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Artifact:
    folder = tmp_path_factory.mktemp("source") / "checkpoint"
    spec = ModelSpec(
        tiny=TinyBert(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, dropout=0.0
        )
    )
    build_source_model(spec, 2, folder)
    return Artifact("checkpoint", "torch", "fp32", folder, tree_sha256(folder))


@pytest.fixture
def stage_context(tmp_path, tiny_recipe, tiny_splits):
    """`make(spec, inputs, recipe=...)` -> a StageContext writing into a fresh folder."""

    def make(spec: BaseModel, inputs: dict[str, Artifact], recipe: Recipe | None = None) -> StageContext:
        out = tmp_path / "out"
        out.mkdir(exist_ok=True)
        return StageContext(recipe or tiny_recipe, spec, tiny_splits, inputs, out, Reporter(quiet=True))

    return make


def made(ctx: StageContext, folder: str, kind: str, runtime: str, precision: str) -> Artifact:
    """A stage's output folder as the runner would hand it to the next stage."""
    path: Path = ctx.out_dir / folder
    return Artifact(kind, runtime, precision, path, tree_sha256(path))
