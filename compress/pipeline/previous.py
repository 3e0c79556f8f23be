"""The run a run is compared with ([regression], or `--reproduce`'s bundle), and the comparison record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from compress.core.records import (
    Comparison,
    ComparisonRow,
    Manifest,
    ModelRecord,
    RecipeRecord,
    RunRef,
    Tolerances,
    load_manifest,
)
from compress.pipeline.state import RunInputs
from compress.recipe.load import LoadedRecipe
from compress.verdict import regression


def tolerances(loaded: LoadedRecipe) -> Tolerances:
    """The recipe's [regression] tolerances, or the defaults (used by --reproduce)."""
    spec = loaded.recipe.regression
    if spec is None:
        return Tolerances()
    return Tolerances(
        max_metric_drop=spec.max_metric_drop,
        max_latency_increase=spec.max_latency_increase,
        max_size_increase=spec.max_size_increase,
    )


def previous_run(loaded: LoadedRecipe, out_root: Path, override: Path | None) -> tuple[Manifest, str] | None:
    """The manifest to compare against and where it came from, or None when there is none."""
    spec = loaded.recipe.regression
    if override is not None:
        return load_manifest(override), str(override)
    if spec is None:
        return None
    if spec.baseline == "latest":
        latest = out_root / loaded.name / "latest"
        if not (latest / "manifest.json").is_file():
            return None  # the first run of this recipe: nothing to compare with yet
        return load_manifest(latest), "latest"
    return load_manifest(Path(spec.baseline)), spec.baseline


def comparison_with(
    previous: tuple[Manifest, str],
    rows: Sequence[ComparisonRow],
    recipe: RecipeRecord,
    inputs: RunInputs,
    model: ModelRecord | None = None,
) -> Comparison:
    """The comparison record of this run (its judged rows) against `previous` (manifest, where found)."""
    manifest, where = previous
    changed = regression.what_changed(manifest, recipe, inputs.data, inputs.environment, model)
    candidate = RunRef(recipe_name=inputs.loaded.name)
    return regression.comparison(manifest, candidate, rows, changed, tolerances(inputs.loaded), where)
