"""Content-keyed cache of stage outputs and evaluations.

An entry is a folder `<root>/<kind>/<key>/` holding whatever the step wrote plus `record.json`
(its metrics and the sha256 of every file). It is built under a temporary name and renamed into
place, so a killed run never leaves a half-entry; an entry whose files no longer match their
recorded hashes is treated as absent and rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from compress import __version__
from compress.hashing import file_sha256, json_sha256

RECORD = "record.json"


def _files(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != RECORD
    }


RECORD_FORMAT = 1  # bump when the record layout changes, so old entries are not misread


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
    if record.get("files") != _files(folder):
        return None
    return folder, record


def build(root: Path, kind: str, key: str, work: Callable[[Path], dict]) -> tuple[Path, dict]:
    """Run `work(tmp_folder) -> record` and publish its folder as the entry for `key`.

    If `work` raises, the temporary folder is removed and nothing is published.
    """
    final = root / kind / key
    tmp = root / kind / f".tmp-{key[:16]}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        record = work(tmp)
        record["files"] = _files(tmp)
        (tmp / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final, record
