"""Stages, in pipeline order. The runner reads this table and knows no stage by name.

A stage is a module with `run(ctx: StageContext) -> StageResult`. It reads its own table of the
recipe (`ctx.spec`), the latest artifact of each kind made so far, and writes what it makes under
`ctx.out_dir`. A stage whose own check fails raises `StageFailed`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.recipe import Recipe


@dataclass(frozen=True)
class Artifact:
    """A model a runtime can load: a folder with weights, config and tokenizer."""

    kind: str  # "checkpoint" (torch, safetensors) | "onnx"
    runtime: str
    precision: str
    path: Path
    sha256: str = ""
    serves: tuple[str, ...] = ()  # see NewArtifact
    proxy: str | None = None  # see NewArtifact


@dataclass(frozen=True)
class NewArtifact:
    """What a stage reports it made: `folder` is relative to the stage's out_dir."""

    kind: str
    runtime: str
    precision: str
    folder: str
    serves: tuple[str, ...] = ()  # target names it is built for; empty: any target of its runtime/precision
    # why this is a stand-in, not the thing its runtime means (e.g. a TensorRT graph run on the CPU
    # because no engine could be built here); None for the real thing
    proxy: str | None = None


@dataclass
class StageContext:
    recipe: Recipe
    spec: Any  # the stage's own validated table of the recipe
    splits: dict  # name -> compress.data.Split
    inputs: dict[str, Artifact]  # kind -> latest artifact
    out_dir: Path
    progress: Any  # compress.progress.Reporter


@dataclass
class StageResult:
    """What a stage made. `failure` marks a stage that made its artifacts but missed its own check
    (e.g. no quantization trial met the budget): they are still evaluated and written to the bundle
    as best effort, and the stage fails the run. A stage with nothing worth keeping raises
    StageFailed instead."""

    artifacts: list[NewArtifact]
    metrics: dict = field(default_factory=dict)
    failure: str | None = None


# Pipeline order. Each name is also the recipe table that switches the stage on and the module
# compress.stages.<name> that runs it: one list, nothing to keep in step elsewhere.
STAGES = ("finetune", "prune", "export", "engine", "quantize")


def stage_function(name: str) -> Callable[[StageContext], StageResult]:
    return importlib.import_module(f"compress.stages.{name}").run


def stage_reads(name: str, recipe: Recipe) -> dict:
    """What a stage reads from the recipe beyond its own table, for its cache key. A stage module
    that reads more defines `reads(recipe) -> dict` (e.g. quantize: which ISAs its targets name)."""
    reads = getattr(importlib.import_module(f"compress.stages.{name}"), "reads", None)
    return reads(recipe) if reads is not None else {}
