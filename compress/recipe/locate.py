"""Where a key of a recipe is written: a key path such as ("prune", "recovery", "epochs") or
("targets", 1, "isa") -> its line in the TOML text, for error messages.

TOML lets one key be written in several ways (a `[prune.recovery]` table, a dotted key
`recovery.epochs = 2` under `[prune]`, an inline table `recovery = { epochs = 2 }`); the scanner
below follows table headers, arrays of tables and dotted keys line by line and records the line of
every key path it sees. A path that is not written (a missing required key, a key inside an inline
table) is reported at the line of its closest written parent.
"""

from __future__ import annotations

import re
from typing import Protocol

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY_PART = rf"\s*(?:{_BARE}|{_QUOTED})\s*"
_DOTTED = rf"{_KEY_PART}(?:\.{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)({_DOTTED})\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})=")

Path = tuple[str | int, ...]


def _parts(dotted: str) -> tuple[str, ...]:
    parts = re.findall(rf"{_BARE}|{_QUOTED}", dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _open_brackets(text: str) -> int:
    """How many [ and { a line leaves open (strings and comments skipped), for multi-line arrays."""
    depth, quote, i = 0, "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        i += 1
    return depth


def key_lines(text: str) -> dict[Path, int]:
    """Every key path written in `text` -> its 1-based line. Array-of-tables entries are numbered
    in order ("targets", 0), ("targets", 1), ...; table headers map to their own line."""
    lines: dict[Path, int] = {}
    counts: dict[tuple[str, ...], int] = {}
    table: Path = ()
    depth = 0  # open brackets of a multi-line value: its lines hold no keys
    in_string = False
    for n, line in enumerate(text.splitlines(), start=1):
        if in_string:
            in_string = line.count('"""') % 2 == 0 and line.count("'''") % 2 == 0
            continue
        if depth > 0:
            depth += _open_brackets(line)
            continue
        header = _HEADER.match(line)
        if header:
            names = _parts(header.group(2))
            if header.group(1) == "[[":
                index = counts.get(names, 0)
                counts[names] = index + 1
                table = (*_resolved(names, counts), index)
            else:
                table = _resolved(names, counts)
            lines.setdefault(table, n)
            continue
        assign = _ASSIGN.match(line)
        if assign:
            key = (*table, *_parts(assign.group(1)))
            lines.setdefault(key, n)
            value = line[assign.end() :]
            depth = _open_brackets(value)
            in_string = value.count('"""') % 2 == 1 or value.count("'''") % 2 == 1
    return lines


def _resolved(names: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> Path:
    """A header's path with the current entry of every enclosing array of tables filled in:
    `[targets.profile]` after the second `[[targets]]` is ("targets", 1, "profile")."""
    out: list[str | int] = []
    for i, name in enumerate(names):
        out.append(name)
        prefix = names[: i + 1]
        if prefix in counts and i < len(names) - 1:
            out.append(counts[prefix] - 1)
    return tuple(out)


def line_of(path: Path, text: str) -> int | None:
    """The line of `path`, or of its closest written parent; None when nothing of it is written."""
    lines = key_lines(text)
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def key_text(path: Path) -> str:
    """A key path as a user writes it: ("targets", 1, "isa") -> "targets[1].isa"."""
    text = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")
    return text or "(top level)"


class Source(Protocol):
    """Where the keys of a recipe made of several files were written (`compose.Written`)."""

    def where(self, path: Path) -> str:
        """`key (file line N)` or `key (--set ...)`: the place a user has to change."""
        ...


def where(path: Path, text: str | Source) -> str:
    """`key (line N)` for messages; just the key when it cannot be found in the text."""
    if not isinstance(text, str):
        return text.where(path)
    line = line_of(path, text)
    return f"{key_text(path)} (line {line})" if line else key_text(path)
