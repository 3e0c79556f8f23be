"""Content-keyed cache of stage outputs and evaluations.

An entry is a folder `<root>/<kind>/<key>/` holding whatever the step wrote plus `record.json`
(its metrics, the sha256 of every file, and a checksum of the record itself). It is built under a
temporary name carrying the builder's pid and renamed into place, so a killed run never leaves a
half-entry; an entry whose record or files no longer match their checksums is treated as absent and
rebuilt, and a temporary folder whose process is gone is removed by the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from compress import __version__
from compress.core.hashing import file_sha256, json_sha256

RECORD = "record.json"
TMP_PREFIX = ".tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


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
    return [p for kind in sorted(root.iterdir()) if kind.is_dir() for p in remove_stale(kind, 2)]


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != RECORD
    }


RECORD_FORMAT = 2  # bump when the record layout changes, so old entries are not misread


def json_key(description: dict) -> str:
    """The cache key of a step: a hash of everything that can change its output.

    compress's own version is part of it: a new release may compute a stage differently.
    """
    return json_sha256({**description, "compress": __version__, "record_format": RECORD_FORMAT})


def lookup(root: Path, kind: str, key: str) -> tuple[Path, dict] | None:
    """The entry's folder and record, or None when absent or no longer intact."""
    folder = root / kind / key
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.pop("checksum", None) != json_sha256(record):
        return None
    if record.get("files") != _files(folder):
        return None
    return folder, record


def build(root: Path, kind: str, key: str, work: Callable[[Path], dict]) -> tuple[Path, dict]:
    """Run `work(tmp_folder) -> record` and publish its folder as the entry for `key`.

    If `work` raises, the temporary folder is removed and nothing is published.
    """
    final = root / kind / key
    tmp = root / kind / f"{TMP_PREFIX}{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        record = work(tmp)
        record["files"] = _files(tmp)
        record = json.loads(json.dumps(record, default=str))  # as it will read back
        sealed = {**record, "checksum": json_sha256(record)}
        (tmp / RECORD).write_text(json.dumps(sealed, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final, record
