"""Recipes that build on others: `extends = "base.toml"`, and `--set key=value` from the command line.

Composition works on the parsed TOML, before validation, so the schema sees one ordinary recipe:
tables merge key by key, `[[targets]]` merge by `name` (same name: its keys override; a new name is
appended), `remove_targets` drops inherited ones, and `--set` values are applied last. A path written
in a parent file is relative to that file and is rebased onto the recipe being run, so a base can sit
in another folder of the tree. `Written` remembers which file (or `--set`) wrote each key, so errors
point at the line a user has to change.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compress.core.errors import CompressError
from compress.recipe.locate import key_lines, key_text

COMPOSE_KEYS = ("extends", "remove_targets")  # read here, never seen by the schema
# keys holding paths: relative to the file that writes them
PATH_KEYS: tuple[tuple[str, ...], ...] = (
    ("data", "train"),
    ("data", "dev"),
    ("data", "test"),
    ("model", "path"),
    ("evaluation", "pool", "file"),
    ("output", "dir"),
    ("regression", "baseline"),
)
MAX_CHAIN = 16  # a deeper chain is a mistake, not a design


@dataclass
class Written:
    """Where each key of a composed recipe was written: the files of the chain (the recipe run
    last) and the keys `--set` gave. Used for error messages only."""

    files: list[tuple[Path, str, dict]] = field(default_factory=list)  # (path, text, parsed), base first
    overrides: dict[tuple[str, ...], str] = field(default_factory=dict)  # key path -> the --set text
    targets: list[str] = field(default_factory=list)  # resolved target names, in order

    def where(self, path: tuple[str | int, ...]) -> str:
        """`key (file line N)`, `key (--set ...)`, or the key alone when nothing wrote it."""
        named = self._by_name(path)
        for end in range(len(named), 0, -1):
            if named[:end] in self.overrides:
                return f"{key_text(path)} (--set {self.overrides[named[:end]]})"
        for end in range(len(path), 0, -1):
            for file, text, parsed in reversed(self.files):
                local = _local_path(path[:end], named, parsed)
                if local is None:
                    continue
                line = key_lines(text).get(local)
                if line is not None:
                    return f"{key_text(path)} ({file.name} line {line})"
        return key_text(path)

    def _by_name(self, path: tuple[str | int, ...]) -> tuple[str, ...]:
        """("targets", 1, "isa") -> ("targets", "<name of target 1>", "isa")."""
        if len(path) > 1 and path[0] == "targets" and isinstance(path[1], int):
            if path[1] < len(self.targets):
                return ("targets", self.targets[path[1]], *map(str, path[2:]))
        return tuple(map(str, path))


def _local_path(path: tuple[str | int, ...], named: tuple[str, ...], parsed: dict) -> tuple | None:
    """`path` as numbered in one file of the chain (its own order of targets); None if it has none."""
    if len(path) > 1 and path[0] == "targets":
        names = [t.get("name") for t in parsed.get("targets", []) if isinstance(t, dict)]
        if named[1] not in names:
            return None
        return ("targets", names.index(named[1]), *path[2:])
    return path


@dataclass
class Composed:
    """A recipe's values after `extends` and `--set`, and where they came from."""

    raw: dict[str, Any]
    written: Written
    chain: list[tuple[Path, str]]  # (file, sha256), the recipe run first, its furthest base last
    overrides: list[str]

    @property
    def is_plain(self) -> bool:
        """One file, no `--set`: its text can be kept as written."""
        return len(self.chain) == 1 and not self.overrides


def compose(path: Path, text: str, overrides: list[str], *, allow_outside: bool) -> Composed:
    """Follow `extends` from `path` (whose `text` is already read), merge, then apply `overrides`."""
    written = Written()
    raw = _resolve(path.resolve(), text, [], written, allow_outside=allow_outside)
    raw = copy.deepcopy(raw)  # overrides must not reach the parsed files kept for messages
    for item in overrides:
        key, value = _parse_override(item)
        _apply(raw, key, value, item)
        written.overrides[key] = item
    targets = raw.get("targets")
    if isinstance(targets, list):
        written.targets = [t.get("name", "") if isinstance(t, dict) else "" for t in targets]
    chain = [(file, hashlib.sha256(text.encode()).hexdigest()) for file, text, _ in reversed(written.files)]
    return Composed(raw=raw, written=written, chain=chain, overrides=list(overrides))


def _resolve(path: Path, text: str, seen: list[Path], written: Written, *, allow_outside: bool) -> dict:
    if path in seen:
        cycle = " -> ".join(p.name for p in [*seen[seen.index(path) :], path])
        raise CompressError(f"{seen[0]}: extends makes a cycle: {cycle}")
    if len(seen) >= MAX_CHAIN:
        raise CompressError(f"{seen[0]}: extends chain deeper than {MAX_CHAIN} files")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CompressError(f"{path}: not valid TOML: {exc}") from None
    base_name = raw.pop("extends", None)
    removed = raw.pop("remove_targets", None)
    if base_name is None:
        if removed is not None:
            raise CompressError(
                f"{path}: remove_targets (line {_line('remove_targets', text)}) needs extends"
            )
        written.files.insert(0, (path, text, copy.deepcopy(raw)))
        return raw
    at = f"{path}: extends (line {_line('extends', text)})"
    if not isinstance(base_name, str) or not base_name:
        raise CompressError(f'{at}: must be a file name, such as "base.toml"')
    relative = Path(base_name)
    if not allow_outside and (relative.is_absolute() or ".." in relative.parts):
        raise CompressError(
            f"{at}: {base_name} leads outside the recipe's folder (absolute or '..'); "
            "give --allow-outside if that is intended"
        )
    base_path = (path.parent / relative).resolve()
    if not base_path.is_file():
        raise CompressError(f"{at}: file not found: {base_path}")
    base_text = base_path.read_bytes().decode("utf-8", errors="replace")
    base = _resolve(base_path, base_text, [*seen, path], written, allow_outside=allow_outside)
    _rebase_paths(base, base_path.parent, path.parent)
    if removed is not None:
        _remove_targets(base, removed, f"{path}: remove_targets (line {_line('remove_targets', text)})")
    written.files.append((path, text, copy.deepcopy(raw)))
    return merge(base, raw)


def _line(key: str, text: str) -> int | None:
    return key_lines(text).get((key,))


def _rebase_paths(raw: dict, source: Path, dest: Path) -> None:
    """Relative paths written in a file at `source` rewritten relative to `dest`, in place."""
    for key in PATH_KEYS:
        holder: Any = raw
        for part in key[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        value = holder.get(key[-1]) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or not isinstance(value, str) or value == "latest":
            continue
        if not Path(value).is_absolute():
            holder[key[-1]] = Path(os.path.relpath(source / value, dest)).as_posix()


def _remove_targets(base: dict, names: Any, at: str) -> None:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CompressError(f"{at}: must be a list of target names")
    known = [t.get("name") for t in base.get("targets", [])]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise CompressError(
            f"{at}: no inherited target named {', '.join(unknown)} (inherited: {', '.join(map(str, known))})"
        )
    base["targets"] = [t for t in base.get("targets", []) if t.get("name") not in names]


def merge(base: dict, child: dict) -> dict:
    """`child` over `base`: tables key by key, `targets` by name, anything else replaced."""
    out = dict(base)
    for key, value in child.items():
        old = out.get(key)
        if key == "targets" and isinstance(old, list) and isinstance(value, list):
            out[key] = _merge_targets(old, value)
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge(old, value)
        else:
            out[key] = value
    return out


def _merge_targets(base: list, child: list) -> list:
    merged = [dict(t) if isinstance(t, dict) else t for t in base]
    names = [t.get("name") if isinstance(t, dict) else None for t in merged]
    for target in child:
        name = target.get("name") if isinstance(target, dict) else None
        if name is not None and name in names:
            i = names.index(name)
            merged[i] = merge(merged[i], target)
        else:
            merged.append(target)
            names.append(name)
    return merged


def _parse_override(item: str) -> tuple[tuple[str, ...], Any]:
    """`finetune.epochs=2` -> (("finetune", "epochs"), 2). The value is read as TOML; a value that
    is not TOML (a bare word) is taken as a string, so `--set output.name=nightly` works."""
    key, sep, value = item.partition("=")
    parts = tuple(p.strip() for p in key.strip().split("."))
    if not sep or not all(parts):
        raise CompressError(f"--set {item}: expected KEY=VALUE, such as finetune.epochs=2")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return parts, parsed


def _apply(raw: dict, key: tuple[str, ...], value: Any, item: str) -> None:
    """Set `key` in `raw`; `targets.NAME.field` addresses the target named NAME."""
    holder: Any = raw
    for i, part in enumerate(key[:-1]):
        if isinstance(holder, list):  # inside targets: select by name
            match = [t for t in holder if isinstance(t, dict) and t.get("name") == part]
            if not match:
                names = ", ".join(str(t.get("name")) for t in holder if isinstance(t, dict))
                raise CompressError(f"--set {item}: no target named '{part}' (targets: {names})")
            holder = match[0]
            continue
        if not isinstance(holder, dict):
            raise CompressError(f"--set {item}: {'.'.join(key[:i])} is not a table")
        holder = holder.setdefault(part, [] if part == "targets" else {})
    if isinstance(holder, list):
        raise CompressError(f"--set {item}: name a target's key, as targets.NAME.KEY=VALUE")
    if not isinstance(holder, dict):
        raise CompressError(f"--set {item}: {'.'.join(key[:-1])} is not a table")
    holder[key[-1]] = value
