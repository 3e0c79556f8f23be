"""Load a recipe: parse the TOML, validate it against the schema, resolve its paths and check what
the schema cannot see (files, the stages its targets need, the pruning plan, the data itself).

Every problem found is reported together in one `CompressError` naming the recipe file, the key and,
where it is written, the line. Stages can then trust what they receive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from compress.core.errors import CompressError
from compress.core.hashing import json_sha256
from compress.data.splits import DataError, check_data_files, load_pool
from compress.models.hub import resolve_hub
from compress.models.packaged import packaged_model_dir
from compress.recipe.compose import compose
from compress.recipe.locate import Source, where
from compress.recipe.schema import ModelSpec, PoolSpec, PruneSpec, Recipe
from compress.recipe.stages import BY_NAME, enabled_stages, makers, servable

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of settings; anything near this is not one
Locator = str | Source  # a recipe's text, or where each key of a composed recipe was written


class ChainFile(BaseModel):
    """One file a recipe was composed from, and its sha256 when it was read."""

    model_config = ConfigDict(frozen=True)
    path: Path
    sha256: str


class LoadedRecipe(BaseModel):
    """A validated recipe plus where it came from; paths inside `recipe` are absolute."""

    model_config = ConfigDict(frozen=True)
    path: Path
    name: str
    recipe: Recipe
    text: str = ""  # the recipe as written (resolved TOML when composed), kept to reproduce the run
    chain: tuple[ChainFile, ...] = ()  # the recipe run first, then what it extends, in order
    overrides: tuple[str, ...] = ()  # the --set items, as given

    def resolved(self) -> dict:
        """The recipe with every default filled in, as JSON (what the manifest records)."""
        return json.loads(self.recipe.model_dump_json())

    def sha256(self) -> str:
        """Of what the recipe says, not where it lies: file paths count by name only (their
        content is hashed separately), so a moved checkout keeps the same recipe hash."""
        resolved = self.resolved()
        for key in ("train", "dev", "test"):
            resolved["data"][key] = Path(resolved["data"][key]).name
        if resolved["model"].get("path"):
            resolved["model"]["path"] = Path(resolved["model"]["path"]).name
        return json_sha256(resolved)


def load_recipe(
    path: Path | str,
    *,
    text: str | None = None,
    base: Path | None = None,
    allow_outside: bool = False,
    overrides: Iterable[str] = (),
) -> LoadedRecipe:
    """Parse, validate and resolve a recipe; raise one CompressError listing every problem.

    `text` and `base` replay a recipe stored in a bundle: its text, with relative paths resolved
    against `base` (the folder the original recipe lay in) instead of `path`'s folder.
    `extends` chains and `overrides` (`--set KEY=VALUE` items) are applied before validation.
    Paths in a recipe must stay inside its folder tree (no absolute paths, no `..`) unless
    `allow_outside`: a recipe copied from elsewhere cannot read or write where it likes.
    """
    path = Path(path)
    if text is None:
        text = _read(path)
    composed = compose(path, text, list(overrides), allow_outside=allow_outside)
    raw = composed.raw
    kept = text if composed.is_plain else resolved_toml(raw)
    source: Locator = text if composed.is_plain else composed.written
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        raise CompressError(f"{path}: " + "; ".join(_describe(e, source) for e in exc.errors())) from None
    outside = [] if allow_outside else _paths_outside(recipe, source)
    if outside:
        raise CompressError(f"{path}: " + "; ".join(outside))
    recipe = _resolve_paths(recipe, (base or path.parent).resolve())
    problems = _check_stages_cover_targets(recipe, source) + _check_files(recipe, source)
    if not problems and recipe.prune is not None:
        problems = _check_prune(recipe.model, recipe.prune, source)
    if not problems:  # reading the data is the slow part: only once the rest is sound
        problems = [f"{where(('data', key), source)}: {msg}" for key, msg in check_data_files(recipe.data)]
    if not problems and recipe.evaluation.pool is not None:
        problems = _check_pool(recipe, recipe.evaluation.pool, source)
    if problems:
        raise CompressError(f"{path}: " + "; ".join(problems))
    name = recipe.output.name or path.stem
    chain = tuple(ChainFile(path=p, sha256=sha) for p, sha in composed.chain)
    return LoadedRecipe(
        path=path.resolve(), name=name, recipe=recipe, text=kept, chain=chain, overrides=tuple(overrides)
    )


def resolved_toml(raw: dict) -> str:
    """A composed recipe as one TOML file: what `validate --print` shows and the bundle keeps."""
    import tomli_w

    header = "# resolved by compress: extends and --set applied; defaults left out (see `compress schema`)\n"
    order = list(Recipe.model_fields)
    ordered = dict(sorted(raw.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    return header + tomli_w.dumps(ordered)


def _read(path: Path) -> str:
    if not path.is_file():
        raise CompressError(f"{path}: recipe file not found")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise CompressError(f"{path}: {size:,} bytes; a recipe may be at most {MAX_RECIPE_BYTES:,}")
    return path.read_bytes().decode("utf-8", errors="replace")


def _paths_outside(recipe: Recipe, text: Locator) -> list[str]:
    """Every path key that is absolute or climbs out with `..`, named with its line."""
    paths: dict[tuple[str, ...], Path | None] = {
        ("data", k): getattr(recipe.data, k) for k in ("train", "dev", "test")
    }
    paths[("model", "path")] = recipe.model.path
    paths[("output", "dir")] = recipe.output.dir
    if recipe.regression is not None and recipe.regression.baseline != "latest":
        paths[("regression", "baseline")] = Path(recipe.regression.baseline)
    if recipe.evaluation.pool is not None:
        paths[("evaluation", "pool", "file")] = recipe.evaluation.pool.file
    return [
        f"{where(loc, text)}: {p} leads outside the recipe's folder (absolute or '..'); "
        "give it on the command line with --allow-outside if that is intended"
        for loc, p in paths.items()
        if p is not None and (p.is_absolute() or ".." in p.parts)
    ]


def _resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    def absolute(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    data = recipe.data.model_copy(
        update={k: absolute(getattr(recipe.data, k)) for k in ("train", "dev", "test")}
    )
    model = recipe.model
    if model.path is not None:
        model = model.model_copy(update={"path": absolute(model.path)})
    regression = recipe.regression
    if regression is not None and regression.baseline != "latest":
        regression = regression.model_copy(update={"baseline": str(absolute(Path(regression.baseline)))})
    evaluation = recipe.evaluation
    if evaluation.pool is not None and evaluation.pool.file is not None:
        pool = evaluation.pool.model_copy(update={"file": absolute(evaluation.pool.file)})
        evaluation = evaluation.model_copy(update={"pool": pool})
    return recipe.model_copy(
        update={"data": data, "model": model, "regression": regression, "evaluation": evaluation}
    )


def _check_files(recipe: Recipe, text: Locator) -> list[str]:
    problems = []
    for key in ("train", "dev", "test"):
        p = getattr(recipe.data, key)
        if not p.is_file():
            problems.append(f"{where(('data', key), text)}: file not found: {p}")
    if recipe.model.path is not None:
        p = recipe.model.path
        at = where(("model", "path"), text)
        if not (p / "config.json").is_file():
            problems.append(f"{at}: not a Hugging Face checkpoint folder (no config.json): {p}")
        elif not any(p.glob("*.safetensors")):
            problems.append(
                f"{at}: no *.safetensors weights in {p} "
                "(pickled .bin checkpoints are not loaded: convert them to safetensors)"
            )
        else:
            problems += [f"{at}: {bad}" for bad in _unreadable_safetensors(p)]
    if recipe.model.hub is not None:
        problems += _check_hub(recipe.model, text)
    pool = recipe.evaluation.pool
    if pool is not None and pool.file is not None and not pool.file.is_file():
        problems.append(f"{where(('evaluation', 'pool', 'file'), text)}: file not found: {pool.file}")
    if pool is not None and pool.unused_train and recipe.data.train_rows is None:
        problems.append(
            f"{where(('evaluation', 'pool', 'unused_train'), text)}: every train row is trained on "
            "(no data.train_rows): set data.train_rows below the file's rows, or give pool.file"
        )
    regression = recipe.regression
    if regression is not None and regression.baseline != "latest":
        p = Path(regression.baseline)
        if not (p.is_file() or (p / "manifest.json").is_file()):
            problems.append(
                f"{where(('regression', 'baseline'), text)}: no bundle manifest at {p} "
                '(give a bundle folder, its manifest.json, or "latest")'
            )
    return problems


def _check_hub(spec: ModelSpec, text: Locator) -> list[str]:
    """The hub model is in the local cache at that revision, and loads without code."""
    at = where(("model", "hub"), text)
    try:
        snapshot = resolve_hub(str(spec.hub), spec.revision)
    except CompressError as exc:
        if spec.revision is not None and "but not at revision" in str(exc):  # the id is there
            at = where(("model", "revision"), text)
        return [f"{at}: {exc}"]
    return [f"{at}: {bad}" for bad in _unreadable_safetensors(snapshot.folder)]


def _check_pool(recipe: Recipe, pool: PoolSpec, text: Locator) -> list[str]:
    """The pool reads like the splits, and its labels are ones the model knows."""
    at = where(("evaluation", "pool", "file" if pool.file is not None else "unused_train"), text)
    try:
        rows = load_pool(recipe.data, pool)
    except DataError as exc:
        return [f"{at}: {exc}"]
    if not rows.labels:
        return [f"{at}: the pool has no rows"]
    known = len(recipe.data.label_names) if recipe.data.label_names else None
    if known is not None and max(rows.labels) >= known:
        return [f"{at}: labels outside label_names"]
    return []


def _model_shape(spec: ModelSpec) -> tuple[int, int] | str:
    """(layers, heads per layer) of the starting model, read from its config without loading it;
    or why its family cannot be pruned."""
    from compress.models.architectures import layers_and_heads, prunable_family, unsupported

    if spec.tiny is not None:
        if prunable_family(spec.tiny.family) is None:  # tiny families are named by model_type
            return unsupported(spec.tiny.family)
        return spec.tiny.num_hidden_layers, spec.tiny.num_attention_heads
    if spec.hub is not None:
        folder = resolve_hub(spec.hub, spec.revision).folder
    else:
        folder = spec.path if spec.path is not None else packaged_model_dir(str(spec.packaged))
    config = json.loads((folder / "config.json").read_text())
    model_type = str(config.get("model_type", "unknown"))
    if prunable_family(model_type) is None:
        return unsupported(model_type)
    return layers_and_heads(config)


def _check_prune(model: ModelSpec, spec: PruneSpec, text: Locator) -> list[str]:
    """Refuse plans that would empty a layer of heads, or a family pruning does not know, before
    any work is done."""
    shape = _model_shape(model)
    if isinstance(shape, str):
        return [f"{where(('prune',), text)}: {shape}"]
    n_layers, n_heads = shape
    at = where(("prune", "heads_fraction"), text)
    if spec.min_heads_per_layer > n_heads:
        at = where(("prune", "min_heads_per_layer"), text)
        return [f"{at}: the model has only {n_heads} heads per layer"]
    n_remove = round(spec.heads_fraction * n_layers * n_heads)
    if spec.per_layer:
        per_layer = -(-n_remove // n_layers)  # the most any one layer gives up
        if n_heads - per_layer < spec.min_heads_per_layer:
            return [
                f"{at}: removing {per_layer} of {n_heads} heads in a layer leaves fewer than "
                f"min_heads_per_layer = {spec.min_heads_per_layer}"
            ]
    elif n_remove > n_layers * (n_heads - spec.min_heads_per_layer):
        return [
            f"{at}: removing {n_remove} of {n_layers * n_heads} heads cannot keep "
            f"min_heads_per_layer = {spec.min_heads_per_layer} in every layer"
        ]
    if spec.heads_fraction and n_remove == 0:
        return [f"{at}: {spec.heads_fraction} of {n_layers * n_heads} heads rounds to none: nothing removed"]
    return []


def _unreadable_safetensors(folder: Path) -> list[str]:
    """Weight files whose header cannot be read or whose tensors run past the end of the file."""
    from safetensors import SafetensorError, safe_open

    bad = []
    for f in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(f, framework="numpy") as handle:
                handle.keys()
        except (SafetensorError, OSError) as exc:
            bad.append(f"corrupt weights file {f}: {exc}")
    return bad


def _check_stages_cover_targets(recipe: Recipe, text: Locator) -> list[str]:
    """Every target has a stage in the recipe that makes it, with the stages that one needs.
    torch/fp32 targets are always servable: without a stage that retrains, the starting model is it."""
    enabled = {stage.name for stage in enabled_stages(recipe)}
    problems = []
    for i, target in enumerate(recipe.targets):
        at = where(("targets", i, "runtime"), text)
        pair = f"{target.runtime}/{target.precision}"
        candidates = makers(target.runtime, target.precision)
        if not candidates:
            problems.append(
                f"{at}: target '{target.name}' asks for {pair}, which no stage of this version produces "
                f"(available: {', '.join(servable())})"
            )
            continue
        chosen = next((s for s in candidates if s.name in enabled), None)
        if chosen is None and pair != "torch/fp32":
            chosen = candidates[0]
            missing = [BY_NAME[n] for n in chosen.needs if n not in enabled] + [chosen]
        else:
            missing = [BY_NAME[n] for n in (chosen.needs if chosen else ()) if n not in enabled]
        if missing:
            stage = missing[0]
            article = "an" if stage.name[0] in "aeiou" else "a"
            problems.append(
                f"{at}: target '{target.name}' needs {stage.purpose}: add {article} [{stage.name}] table"
            )
        if target.isa is not None and pair != "onnxruntime/int8":
            problems.append(
                f"{where(('targets', i, 'isa'), text)}: target '{target.name}': isa applies only to "
                "onnxruntime/int8 targets"
            )
    return problems


def _describe(error: Mapping[str, Any], text: Locator) -> str:
    loc = tuple(error["loc"])
    # pydantic appends the validator's input type to union locations; keep the user's key path
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "union"))))
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where(loc, text)}: unknown key"
    if kind == "missing":
        return f"{where(loc, text)}: required key is missing"
    msg = error["msg"]
    if kind == "literal_error":
        msg = msg.replace("Input should be", "must be one of")
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif error.get("input") is not None and kind.endswith(("_type", "_parsing")):
        msg = f"{msg} (got {json.dumps(error['input'], default=str)[:60]})"
    return f"{where(loc, text)}: {msg}"
