"""`compress run --reproduce BUNDLE`: the recipe a bundle was made from, checked against what it
recorded (the recipe copy's hash, the data files' hashes), ready to run again."""

from __future__ import annotations

from pathlib import Path

from compress.core.environment import versions
from compress.core.errors import CompressError
from compress.core.hashing import file_sha256
from compress.core.records import ChainRecord
from compress.output.verify import BundleInvalid, check_manifest
from compress.recipe.load import ChainFile, LoadedRecipe, load_recipe


def _data_matches(loaded: LoadedRecipe, recorded: dict[str, str]) -> list[str]:
    problems = []
    for key, sha in recorded.items():
        path = getattr(loaded.recipe.data, key)
        if not path.is_file():
            problems.append(f"data file '{key}' not found at {path}")
        elif file_sha256(path) != sha:
            problems.append(f"data file '{key}' at {path} has changed since the bundle (sha256 differs)")
    return problems


def _chain_changes(chain: list[ChainRecord]) -> list[str]:
    """Files the recipe was composed from that have changed since: the recorded resolved recipe is
    what reruns, so this is a note, not an error."""
    notes = []
    for item in chain:
        path = Path(item.path)
        if path.is_file() and file_sha256(path) != item.sha256:
            notes.append(f"{path} has changed since the bundle; rerunning the recipe the bundle recorded")
    return notes


def recorded_recipe(bundle: Path, *, allow_outside: bool = False) -> tuple[LoadedRecipe, list[str]]:
    """The bundle's recipe, resolved where its data files still match; and notes on what differs
    (toolchain versions). Raises CompressError when the bundle or its data cannot be trusted."""
    if not bundle.is_dir():
        raise CompressError(f"{bundle}: --reproduce needs a bundle folder (manifest.json, recipe.toml)")
    try:
        manifest = check_manifest(bundle)
    except BundleInvalid as exc:
        raise CompressError(f"{bundle}: {exc}") from None
    copy = manifest.recipe.copy_name
    entry = next((f for f in manifest.files if f.path == copy), None)
    if entry is None or not (bundle / copy).is_file():
        raise CompressError(f"{bundle}: the bundle holds no recipe copy to reproduce from")
    if file_sha256(bundle / copy) != entry.sha256:
        raise CompressError(f"{bundle / copy}: differs from the manifest's sha256 (edited or corrupt)")
    original = Path(manifest.recipe.path)
    # a hub model's tag or branch may have moved since: rerun the commit the bundle was made from
    recorded = manifest.model.hub_commit if manifest.model is not None else None
    pins = [f"model.revision={recorded}"] if recorded else []
    text = (bundle / copy).read_text()
    # where the recipe's relative data paths resolve: its original folder, else this checkout's
    bases = [original.parent, Path.cwd() / "recipes", Path.cwd()]
    tried = []
    for base in bases:
        if not base.is_dir():
            continue
        try:
            loaded = load_recipe(original, text=text, base=base, allow_outside=allow_outside, overrides=pins)
        except CompressError as exc:
            tried.append(f"from {base}: {exc}")
            continue
        problems = _data_matches(loaded, manifest.data.files)
        if not problems:
            break
        tried.append(f"from {base}: " + "; ".join(problems))
    else:
        raise CompressError(f"{bundle}: cannot reproduce: " + " | ".join(tried))
    # what the original was composed from, not the resolved copy it is replayed from
    chain = tuple(ChainFile(path=Path(c.path), sha256=c.sha256) for c in manifest.recipe.chain)
    loaded = loaded.model_copy(update={"chain": chain, "overrides": tuple(manifest.recipe.overrides)})
    if recorded and manifest.model is not None and manifest.model.revision != recorded:
        pinned = f"model.revision pinned to the commit the bundle was made from, {recorded[:12]}"
        notes = [f"{pinned} (the recipe says '{manifest.model.revision}')"]
    else:
        notes = []
    now = versions()
    then = manifest.environment.versions
    notes += _chain_changes(manifest.recipe.chain) + [
        f"{k} is {now[k]} here, the bundle was made with {then.get(k)}: results may differ"
        for k in sorted(now)
        if then.get(k) != now[k]
    ]
    return loaded, notes
