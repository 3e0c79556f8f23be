"""`compress cache explain RECIPE STAGE`: what a stage's cache key is made of, read from the cache
without building or pinning anything."""

from __future__ import annotations

from pathlib import Path

from compress.core import cache
from compress.core.artifact import Artifact
from compress.core.cache import Cache, read_entry
from compress.core.code import closure
from compress.core.errors import CompressError
from compress.core.progress import Reporter
from compress.core.records import ArtifactRecord
from compress.pipeline.assess import source_key, source_parts
from compress.pipeline.execute import key_parts
from compress.pipeline.state import RunState, read_inputs
from compress.recipe.load import LoadedRecipe
from compress.recipe.stages import enabled_stages


def explain(loaded: LoadedRecipe, out_root: Path, stage_name: str) -> dict:
    """The stage's key, whether the cache holds it, the parts it hashes and the modules of its code,
    and the starting model's key and parts (a hub model's commit among them), which every stage's
    key chains on. Earlier stages must be cached: a stage's key holds what they made."""
    names = [s.name for s in enabled_stages(loaded.recipe)]
    if stage_name not in names:
        raise CompressError(f"{stage_name}: not a stage of this recipe (stages: {', '.join(names)})")
    root = out_root / ".cache"
    inputs = read_inputs(loaded, Cache(root, "explain", loaded.name), Reporter(quiet=True))
    state = RunState()
    key = source = source_key(inputs)
    entry = read_entry(root / "source" / key)
    if entry is None:
        raise CompressError(f"{loaded.path}: nothing of this recipe is cached in {root} yet: run it first")
    state.artifacts["checkpoint"] = Artifact(
        "checkpoint", "torch", "fp32", root / "source" / key / "checkpoint", entry["sha256"], key=key
    )
    for stage in enabled_stages(loaded.recipe):
        parts = key_parts(stage, inputs, state)
        key = cache.json_key(parts)
        folder = root / stage.name / key
        entry = read_entry(folder)
        if stage.name == stage_name:
            return {
                "stage": stage.name,
                "key": key,
                "cached": entry is not None,
                "parts": parts,
                "code_modules": list(closure(stage.module)),
                "source": {"key": source, "parts": source_parts(inputs)},  # the starting model's key
            }
        if entry is None:
            raise CompressError(
                f"stage '{stage.name}' (before '{stage_name}') is not cached for this recipe, and "
                f"'{stage_name}''s key holds what it makes: run the recipe first"
            )
        for made in (ArtifactRecord.from_json(a) for a in entry["artifacts"]):
            state.artifacts[made.kind] = Artifact(
                made.kind,
                made.runtime,
                made.precision,
                folder / made.folder,
                made.sha256,
                made.serves,
                key=key,
            )
    raise AssertionError("unreachable: the stage is enabled")
