"""The building blocks of the recipe's tables: shared value types, the "BxS" shape, and the strict
base every table derives from. Imports nothing from compress."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

Runtime = Literal["torch", "onnxruntime", "tensorrt"]
Precision = Literal["fp32", "fp16", "int8"]
Isa = Literal["auto", "avx512_vnni", "avx2", "arm64"]  # the CPU family INT8 kernels are chosen for
PositiveFloat = Annotated[float, Field(gt=0)]
# Strict models refuse "32" for an int; paths are the one place a string must become something else
PathField = Annotated[Path, Field(strict=False)]


class Shape(NamedTuple):
    """A batch x sequence shape, written "BxS" in recipes, manifests and reports."""

    batch: int
    sequence: int

    def __str__(self) -> str:
        return f"{self.batch}x{self.sequence}"

    @classmethod
    def parse(cls, text: str) -> Shape:
        """ "8x64" -> Shape(8, 64); ValueError naming the expected form otherwise."""
        match = re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", text.strip().lower())
        if match is None:
            raise ValueError(f'must be BATCHxSEQUENCE, e.g. "1x128" (got {text!r})')
        return cls(int(match[1]), int(match[2]))


def _to_shape(value: object) -> object:
    if isinstance(value, Shape):
        return value
    if not isinstance(value, str):
        raise ValueError(f'must be a "BATCHxSEQUENCE" string, e.g. "1x128" (got {value!r})')
    return Shape.parse(value)


# Read from "BxS" text once, here; written back as the same text (cache keys, manifests)
ShapeText = Annotated[
    Shape,
    BeforeValidator(_to_shape),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[1-9][0-9]*x[1-9][0-9]*$"}),
]


class Strict(BaseModel):
    """Unknown keys refused, no silent coercion ("32" is not an int), frozen once validated."""

    # each field's docstring is its description in `compress schema` (editors show it on hover)
    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, validate_default=True, use_attribute_docstrings=True
    )


Calibration = Literal["minmax", "entropy", "percentile"]
Inconclusive = Literal["fail", "pass"]
