"""`compress cache ls` and `compress cache prune`: what the cache holds, and making it smaller.

Prune is safe while runs use the cache: it removes an entry only under that entry's lock (the lock
a run takes to build or pin it) and never one that a live run has pinned.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from compress.core.cache import RECORD, TMP_PREFIX, entry_lock, live_pins
from compress.core.errors import CompressError
from compress.core.hashing import folder_bytes


@dataclass
class EntryInfo:
    """One cache entry: where, how big, when last used, by which recipes and runs."""

    kind: str
    key: str
    bytes: int
    last_used: float
    recipes: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)
    pinned: bool = False

    @property
    def name(self) -> str:
        """ "kind/key", as pins and the usage log name it."""
        return f"{self.kind}/{self.key}"


def _usage(root: Path) -> list[dict]:
    log = root / ".usage.jsonl"
    if not log.is_file():
        return []
    lines = []
    for line in log.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash mid-write: the rest still counts
    return lines


def entries(root: Path) -> list[EntryInfo]:
    """Every complete entry under `root`, most recently used first."""
    found: dict[str, EntryInfo] = {}
    if not root.is_dir():
        return []
    for kind in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder in kind.iterdir():
            if folder.name.startswith(TMP_PREFIX) or not (folder / RECORD).is_file():
                continue
            info = EntryInfo(kind.name, folder.name, folder_bytes(folder), (folder / RECORD).stat().st_mtime)
            found[info.name] = info
    for use in _usage(root):
        used = found.get(use.get("entry", ""))
        if used is not None:
            used.last_used = max(used.last_used, float(use.get("time", 0)))
            used.recipes.add(str(use.get("recipe")))
            used.runs.add(str(use.get("run")))
    pinned = live_pins(root)
    for info in found.values():
        info.pinned = info.name in pinned
    return sorted(found.values(), key=lambda e: -e.last_used)


def parse_size(text: str) -> int:
    """ "500M", "2G", "1.5GB", "10k", "123" (bytes) -> bytes (powers of 1024)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if match is None:
        raise CompressError(f"--max-size {text!r}: give a size such as 500M, 2G or 1.5GB")
    return int(float(match[1]) * 1024 ** "_kmgt".index(match[2] or "_"))


def choose(
    found: list[EntryInfo],
    *,
    keep_last: int | None,
    max_size: int | None,
    older_than_days: float | None,
    runs: list[str],
    now: float,
) -> list[EntryInfo]:
    """Which entries to remove (pure): outside the last `keep_last` runs (`runs`, newest first),
    unused for `older_than_days`, then least recently used until the rest fit `max_size`. Pinned
    entries are never chosen."""
    chosen: dict[str, EntryInfo] = {}
    candidates = [e for e in found if not e.pinned]
    if keep_last is not None:
        recent = set(runs[:keep_last])
        chosen.update({e.name: e for e in candidates if not (e.runs & recent)})
    if older_than_days is not None:
        cutoff = now - older_than_days * 86400
        chosen.update({e.name: e for e in candidates if e.last_used < cutoff})
    if max_size is not None:
        size = sum(e.bytes for e in found if e.name not in chosen)
        for e in sorted(candidates, key=lambda e: e.last_used):  # least recently used first
            if size <= max_size:
                break
            if e.name not in chosen:
                chosen[e.name] = e
                size -= e.bytes
    return list(chosen.values())


def prune(
    root: Path,
    *,
    keep_last: int | None = None,
    max_size: int | None = None,
    older_than_days: float | None = None,
) -> tuple[list[EntryInfo], int]:
    """Remove what `choose` picks, each under its entry lock and only if still unpinned; returns the
    entries removed and the bytes the cache holds afterwards."""
    with FileLock(root / ".prune.lock"):
        found = entries(root)
        runs = _runs_newest_first(root)
        removed = []
        for info in choose(
            found,
            keep_last=keep_last,
            max_size=max_size,
            older_than_days=older_than_days,
            runs=runs,
            now=time.time(),
        ):
            with entry_lock(root, info.kind, info.key):
                if info.name in live_pins(root):  # pinned since we looked: a run needs it
                    continue
                folder = root / info.kind / info.key
                trash = folder.with_name(f"{TMP_PREFIX}prune-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                folder.rename(trash)  # one atomic step out of every reader's sight
                shutil.rmtree(trash, ignore_errors=True)
            removed.append(info)
        _forget(root, {e.name for e in removed})
    return removed, sum(e.bytes for e in entries(root))


def _runs_newest_first(root: Path) -> list[str]:
    latest: dict[str, float] = {}
    for use in _usage(root):
        run = str(use.get("run"))
        latest[run] = max(latest.get(run, 0.0), float(use.get("time", 0)))
    return sorted(latest, key=lambda r: -latest[r])


def _forget(root: Path, names: set[str]) -> None:
    """Drop the removed entries' lines from the usage log."""
    if not names:
        return
    with FileLock(root / ".usage.lock"):
        kept = [u for u in _usage(root) if u.get("entry") not in names]
        staging = root / f".usage.jsonl.{uuid.uuid4().hex[:8]}"
        staging.write_text("".join(json.dumps(u) + "\n" for u in kept))
        staging.replace(root / ".usage.jsonl")
