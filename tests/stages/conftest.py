"""Stage modules run directly, on the session's tiny checkpoint and rows (tests/conftest.py), with a
StageContext built the way the runner builds one."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from compress.core.artifact import Artifact
from compress.core.hashing import tree_sha256
from compress.core.progress import Reporter
from compress.core.stage import StageContext
from compress.recipe.schema import Recipe
from tests.conftest import RECIPE  # noqa: F401  (re-exported for the stage tests)


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
