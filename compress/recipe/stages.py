"""THE stage table: every stage, in pipeline order, with what it reads, makes, needs and is judged on.

Validation, the runner and the CLI read this table and nothing else about stages; a stage's code
lives in the module named here (`run(ctx)`, and optionally `reads(recipe)` for what its cache key
needs beyond its own table). Adding a stage is one row here, one module, one test module and one
shipped recipe that uses it (tests/test_stage_table.py checks the last two).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from compress.recipe.schema import (
    EngineSpec,
    ExportSpec,
    FinetuneSpec,
    Precision,
    PruneSpec,
    QuantizeSpec,
    Recipe,
    Runtime,
    TorchInt8Spec,
)

Spec = TypeVar("Spec", bound=BaseModel)


Budget = tuple[str, float]  # (the recipe key that sets it, points)


def _no_budget(spec: Any, precision: str) -> Budget | None:
    return None


def _budget(key: str, points: float | None) -> Budget | None:
    return None if points is None else (key, points)


@dataclass(frozen=True)
class StageDef(Generic[Spec]):
    """One stage. `budget(spec, precision)` is the stage's own accuracy budget for an artifact of that
    precision, as (recipe key, points), judged on the test rows against the artifact of kind
    `budget_against` that the stage read; None where the stage has none for it."""

    name: str  # also the recipe table that switches it on
    spec: type[Spec]
    module: str  # where `run(ctx)` lives
    makes: tuple[tuple[Runtime, Precision], ...]  # the targets it can serve
    purpose: str  # what a target gets from it, for "needs ...: add a [name] table"
    needs: tuple[str, ...] = ()  # stages whose tables must be in the recipe too
    budget_against: str | None = None  # the input artifact kind the budget is measured against
    budget: Callable[[Spec, str], Budget | None] = _no_budget

    def table(self, recipe: Recipe) -> Spec | None:
        """The stage's table in `recipe`, or None when the recipe does not run it."""
        value = getattr(recipe, self.name)
        return value if isinstance(value, self.spec) else None


STAGES: tuple[StageDef[Any], ...] = (
    StageDef[FinetuneSpec](
        "finetune", FinetuneSpec, "compress.stages.finetune", (("torch", "fp32"),), "a fine-tuned model"
    ),
    StageDef[PruneSpec](
        "prune",
        PruneSpec,
        "compress.stages.prune",
        (("torch", "fp32"),),
        "a pruned model",
        budget_against="checkpoint",
        budget=lambda spec, precision: _budget("prune.max_accuracy_drop", spec.max_accuracy_drop),
    ),
    StageDef[ExportSpec](
        "export", ExportSpec, "compress.stages.export", (("onnxruntime", "fp32"),), "an ONNX model"
    ),
    StageDef[EngineSpec](
        "engine",
        EngineSpec,
        "compress.stages.engine",
        (("tensorrt", "fp16"), ("tensorrt", "int8")),
        "TensorRT",
        needs=("export",),
        budget_against="onnx",
        budget=lambda spec, precision: (
            _budget("engine.int8.max_accuracy_drop", spec.int8.max_accuracy_drop)
            if precision == "int8"
            else None
        ),
    ),
    StageDef[QuantizeSpec](
        "quantize",
        QuantizeSpec,
        "compress.stages.quantize",
        (("onnxruntime", "int8"),),
        "INT8",
        needs=("export",),
        budget_against="onnx",
        budget=lambda spec, precision: _budget("quantize.max_accuracy_drop", spec.max_accuracy_drop),
    ),
    StageDef[TorchInt8Spec](
        "torch_int8",
        TorchInt8Spec,
        "compress.stages.torch_int8",
        (("torch", "int8"),),
        "PyTorch INT8",
        budget_against="checkpoint",
        budget=lambda spec, precision: _budget("torch_int8.max_accuracy_drop", spec.max_accuracy_drop),
    ),
)

BY_NAME = {stage.name: stage for stage in STAGES}


def enabled_stages(recipe: Recipe) -> list[StageDef[Any]]:
    """The stages whose tables are in `recipe`, in pipeline order."""
    return [stage for stage in STAGES if stage.table(recipe) is not None]


def makers(runtime: str, precision: str) -> list[StageDef[Any]]:
    """The stages that can make (runtime, precision), in pipeline order."""
    return [stage for stage in STAGES if (runtime, precision) in stage.makes]


def servable() -> list[str]:
    """Every "runtime/precision" some stage makes, once each, for messages."""
    return list(dict.fromkeys(f"{r}/{p}" for stage in STAGES for r, p in stage.makes))
