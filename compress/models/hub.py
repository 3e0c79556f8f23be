"""Hugging Face hub models, read from the local hub cache only: `[model] hub = "org/name"`.

Nothing is downloaded, so a CI job with a warm cache needs no network and a run cannot change
under it. The commit a revision names when the run reads it is recorded and keyed on, so a tag or
branch that moves rebuilds. A snapshot loads as safetensors without code, or is refused here.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from compress.core.errors import CompressError

SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}$")
OFFLINE = "the hub is never contacted (offline: only the local cache is read, nothing is downloaded)"

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # as compress.models.loading: huggingface_hub reads it once
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json")


@dataclass(frozen=True)
class HubSnapshot:
    """A cached hub model at one commit: the snapshot folder transformers loads, and that commit."""

    repo_id: str
    revision: str  # as asked for ("main" when the recipe gives none)
    folder: Path
    commit: str


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub picks it (HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub),
    read now rather than when huggingface_hub was imported, so a changed variable counts."""
    env = os.environ
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if not cache:
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
        cache = os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def resolve_hub(repo_id: str, revision: str | None = None) -> HubSnapshot:
    """The cached snapshot that `revision` (a branch, tag or commit sha; "main" when None) of
    `repo_id` names, checked to load without code. CompressError naming the id, the revision and
    where it looked when it is not cached, or saying why the snapshot is refused."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    rev = revision or "main"
    cache = hub_cache_dir()
    try:
        folder = Path(snapshot_download(repo_id, revision=rev, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError:
        folder = _by_short_sha(_storage(cache, repo_id), rev) or _not_cached(repo_id, rev, cache)
    except HFValidationError as exc:
        raise CompressError(f"'{repo_id}' (revision '{rev}') is not a hub model id: {exc}") from None
    snapshot = HubSnapshot(repo_id, rev, folder, folder.name)
    _check_loadable(snapshot)
    return snapshot


def _storage(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _by_short_sha(storage: Path, rev: str) -> Path | None:
    """The one cached snapshot whose commit starts with `rev` (an abbreviated sha), if exactly one."""
    if not SHORT_SHA.match(rev) or not (storage / "snapshots").is_dir():
        return None
    found = [p for p in (storage / "snapshots").iterdir() if p.is_dir() and p.name.startswith(rev)]
    return found[0] if len(found) == 1 else None


def _not_cached(repo_id: str, rev: str, cache: Path) -> NoReturn:
    """Raise: what was tried, what the cache does hold, and how to fill it."""
    storage = _storage(cache, repo_id)
    if not storage.is_dir():
        raise CompressError(
            f"'{repo_id}' (revision '{rev}') is not in the local Hugging Face cache: no {storage}; "
            f"{OFFLINE}: fill the cache first (`hf download {repo_id}` where there is network), or "
            "point HF_HUB_CACHE or HF_HOME at a cache that holds it"
        )
    refs = storage / "refs"
    names = sorted(str(p.relative_to(refs)) for p in refs.rglob("*") if p.is_file()) if refs.is_dir() else []
    snaps = storage / "snapshots"
    shas = sorted(p.name[:12] for p in snaps.iterdir() if p.is_dir()) if snaps.is_dir() else []
    held = ", ".join(names + shas) or "nothing"
    raise CompressError(
        f"'{repo_id}' is cached in {storage} but not at revision '{rev}' (no refs/{rev} naming a "
        f"cached snapshot, and no snapshot of that commit; cached: {held}); {OFFLINE}"
    )


def _check_loadable(snapshot: HubSnapshot) -> None:
    """Safetensors weights, a config, a tokenizer, and no custom code, or CompressError."""
    folder, at = snapshot.folder, f"'{snapshot.repo_id}' at {snapshot.revision} ({snapshot.commit[:12]})"
    config = folder / "config.json"
    if not config.is_file():
        raise CompressError(f"{at}: no config.json in the cached snapshot {folder}: not a transformers model")
    if not any(f.is_file() for f in folder.glob("*.safetensors")):
        raise CompressError(
            f"{at}: no *.safetensors weights in the cached snapshot {folder} (pickled .bin checkpoints "
            "are not loaded: fetch a revision with safetensors weights)"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise CompressError(f"{at}: no tokenizer files in the cached snapshot {folder}")
    for name in ("config.json", "tokenizer_config.json"):
        if not (folder / name).is_file():
            continue
        try:
            settings = json.loads((folder / name).read_text())
        except (OSError, ValueError) as exc:
            raise CompressError(f"{at}: unreadable {name} in {folder}: {exc}") from None
        if isinstance(settings, dict) and settings.get("auto_map"):
            raise CompressError(
                f"{at}: needs custom code ({name} has auto_map), and remote code is never run: "
                "use a model that transformers implements"
            )
