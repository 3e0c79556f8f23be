"""The contract between the runner and a stage: what a stage is given, and what it hands back.

A stage is a module with `run(ctx: StageContext[ItsSpec]) -> StageResult`. It reads its own table of
the recipe (`ctx.spec`, typed), the latest artifact of each kind made so far, and writes what it makes
under `ctx.out_dir`. A stage whose own check fails so badly that nothing is worth keeping raises
`compress.core.errors.StageFailed`. Stages import libraries, never each other or the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from compress.core.artifact import Artifact, NewArtifact
from compress.core.progress import Reporter
from compress.data.splits import Splits
from compress.recipe.schema import Recipe

Spec = TypeVar("Spec", bound=BaseModel)


@dataclass(frozen=True)
class StageContext(Generic[Spec]):
    """What a stage is given: the recipe, its own table, the data, its inputs, where to write."""

    recipe: Recipe
    spec: Spec
    splits: Splits
    inputs: Mapping[str, Artifact]  # artifact kind -> the latest one made
    out_dir: Path
    progress: Reporter


@dataclass
class StageResult:
    """What a stage made. `failure` marks a stage that made its artifacts but missed its own check
    (e.g. no quantization trial met the budget): they are still evaluated and written to the bundle
    as best effort, and the stage fails the run. A stage with nothing worth keeping raises
    StageFailed instead."""

    artifacts: list[NewArtifact]
    metrics: dict = field(default_factory=dict)
    failure: str | None = None
