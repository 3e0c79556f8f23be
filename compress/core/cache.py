"""Content-keyed cache of stage outputs and evaluations, safe to share between concurrent runs.

An entry is a folder `<root>/<kind>/<key>/` holding whatever the step wrote plus `record.json`
(its metrics, the sha256 of every file, and a checksum of the record itself). It is built under a
temporary name carrying the builder's pid and renamed into place, so a killed run never leaves a
half-entry; an entry whose record or files no longer match their checksums is treated as absent and
rebuilt, and a temporary folder whose process is gone is removed by the next run.

Concurrency (filelock, not a hand-rolled lock file): an entry is built under its own lock, so of two
runs that need it the second waits and then reuses the first's entry. A run *pins* every entry it
uses (`.pins/<run id>.json`); `prune` takes the same entry lock and never removes an entry a live run
has pinned. Every use is logged (`.usage.jsonl`: run, recipe, entry, time), which is what `compress
cache ls` shows and `prune --keep-last` / `--older-than` decide by.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from compress import __version__
from compress.core.errors import CompressError
from compress.core.hashing import file_sha256, json_sha256

RECORD = "record.json"
TMP_PREFIX = ".tmp-"
RECORD_FORMAT = 3  # bump when the record layout changes, so old entries are not misread
# errors of the storage itself (not of the step): reported as bad input, exit 2, nothing replaced
STORAGE_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}

Entry = tuple[Path, dict]  # (folder, record)


def json_key(description: dict) -> str:
    """The cache key of a step: a hash of everything that can change its output. Callers put the
    hash of the code that computes it in the description (compress.core.code.code_hash)."""
    return json_sha256({**description, "compress": __version__, "record_format": RECORD_FORMAT})


def storage_error(exc: OSError, what: str) -> CompressError:
    """A full disk, read-only folder or missing permission while writing `what`, as one message."""
    where = f" ({exc.filename})" if exc.filename else ""
    return CompressError(f"could not write {what}: {exc.strerror or exc}{where}; nothing was replaced")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != RECORD
    }


def read_entry(folder: Path) -> dict | None:
    """The entry's record, or None when absent or no longer intact."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.pop("checksum", None) != json_sha256(record):
        return None
    if record.get("files") != _files(folder):
        return None
    return record


def _replace_in_place(new: Path, final: Path, files: dict[str, str]) -> None:
    """A forced rebuild (or a damaged entry) replaced file by file, the record last: the folder's
    path stays valid for a run that is reading it, and a file it has open keeps its contents."""
    for rel in files:
        (final / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(new / rel, final / rel)
    for p in sorted(final.rglob("*"), reverse=True):
        rel = p.relative_to(final).as_posix()
        if p.is_file() and rel != RECORD and rel not in files:
            p.unlink()
    os.replace(new / RECORD, final / RECORD)


def entry_lock(root: Path, kind: str, key: str) -> FileLock:
    """The lock held while the entry is built, pinned or removed."""
    locks = root / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(locks / f"{kind}-{key}.lock")


class Cache:
    """The cache as one run uses it: lookups and builds that pin what they return."""

    def __init__(self, root: Path, run_id: str, recipe: str):
        self.root, self.run_id, self.recipe = root, run_id, recipe
        self.pinned: list[str] = []

    def lookup(self, kind: str, key: str) -> Entry | None:
        """The intact entry, pinned for this run; None when there is none."""
        folder = self.root / kind / key
        if not (folder / RECORD).is_file():
            return None
        with entry_lock(self.root, kind, key):
            record = read_entry(folder)
            if record is not None:
                self._pin(kind, key)
        return None if record is None else (folder, record)

    def get(
        self, kind: str, key: str, work: Callable[[Path], dict], *, force: bool = False
    ) -> tuple[Entry, bool]:
        """The entry for `key`, built by `work(tmp_folder) -> record` if needed (or if `force`):
        (entry, built here). Under the entry's lock: a run that waited for another's build gets
        that build. If `work` raises, nothing is published."""
        if not force and (hit := self.lookup(kind, key)) is not None:
            return hit, False
        try:
            with entry_lock(self.root, kind, key):
                final = self.root / kind / key
                record = None if force else read_entry(final)
                built = record is None
                if record is None:
                    record = self._build(kind, key, work)
                self._pin(kind, key)
            return (final, record), built
        except OSError as exc:
            if exc.errno in STORAGE_ERRORS:
                raise storage_error(exc, f"the cache entry {kind}/{key[:12]} in {self.root}") from None
            raise

    def _build(self, kind: str, key: str, work: Callable[[Path], dict]) -> dict:
        final = self.root / kind / key
        tmp = self.root / kind / f"{TMP_PREFIX}{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            record = work(tmp)
            record["files"] = _files(tmp)
            record = json.loads(json.dumps(record, default=str))  # as it will read back
            sealed = {**record, "checksum": json_sha256(record)}
            (tmp / RECORD).write_text(json.dumps(sealed, indent=1, sort_keys=True))
            if final.is_dir():
                _replace_in_place(tmp, final, record["files"])
            else:
                os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return record

    def _pin(self, kind: str, key: str) -> None:
        """Record that this run uses the entry: pinned against prune while the run lives, logged."""
        name = f"{kind}/{key}"
        if name in self.pinned:
            return
        self.pinned.append(name)
        pins = self.root / ".pins"
        pins.mkdir(parents=True, exist_ok=True)
        body = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "recipe": self.recipe,
            "entries": self.pinned,
        }
        staging = pins / f".{self.run_id}.json.{os.getpid()}"
        staging.write_text(json.dumps(body))
        os.replace(staging, pins / f"{self.run_id}.json")
        line = {"run": self.run_id, "recipe": self.recipe, "entry": name, "time": time.time()}
        with FileLock(self.root / ".usage.lock"), open(self.root / ".usage.jsonl", "a") as log:
            log.write(json.dumps(line) + "\n")

    def release(self) -> None:
        """The run is over: its entries may be pruned again."""
        (self.root / ".pins" / f"{self.run_id}.json").unlink(missing_ok=True)


def live_pins(root: Path) -> set[str]:
    """Entries ("kind/key") pinned by runs that are still alive (on another host: assumed alive)."""
    pinned: set[str] = set()
    folder = root / ".pins"
    if not folder.is_dir():
        return pinned
    host = socket.gethostname()
    for path in folder.glob("*.json"):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if body.get("host") != host or _pid_alive(int(body.get("pid", 0))):
            pinned.update(body.get("entries", []))
        else:
            path.unlink(missing_ok=True)  # the run died without releasing
    return pinned


def remove_stale(folder: Path, pid_field: int) -> list[Path]:
    """Remove temporary entries (`.tmp-*` / `.latest-*`) in `folder` whose builder process is gone.

    `pid_field` is the position of the pid in the name split on "-"; names that do not parse are
    left alone, and so is anything a live process may still be writing."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if not p.name.startswith((TMP_PREFIX, ".latest-")):
            continue
        try:
            pid = int(p.name.split("-")[pid_field if p.name.startswith(TMP_PREFIX) else 1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def remove_stale_entries(root: Path) -> list[Path]:
    """Every kind's folder under the cache root: `.tmp-<key>-<pid>-<uuid>`."""
    if not root.is_dir():
        return []
    return [
        p
        for kind in sorted(root.iterdir())
        if kind.is_dir() and not kind.name.startswith(".")
        for p in remove_stale(kind, 2)
    ]
