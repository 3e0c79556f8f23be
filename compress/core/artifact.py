"""Artifacts: the models stages make, as the runner tracks them and as a stage reports them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    """A model a runtime can load: a folder with weights, config and tokenizer, named by content."""

    kind: str  # "checkpoint" (torch, safetensors) | "onnx" | "tensorrt-<precision>"
    runtime: str
    precision: str
    path: Path
    sha256: str = ""
    serves: tuple[str, ...] = ()  # see NewArtifact
    proxy: str | None = None  # see NewArtifact
    key: str = ""  # the cache key of the entry that made it: later stages' keys chain on it


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
