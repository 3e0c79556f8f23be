"""Content hashes: of files, of folders, and of JSON-able descriptions (cache keys)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (model files are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(folder: Path) -> str:
    """One hash over every file's relative path and content, in a stable order."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0" + file_sha256(p).encode())
    return h.hexdigest()


def json_sha256(value: object) -> str:
    """The hash of a JSON-able value in canonical form (sorted keys, no spaces): equal values, equal
    hashes, whatever order their dict keys were built in."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def folder_bytes(folder: Path) -> int:
    """Total size of the files below `folder`."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
