"""The code a cache entry was built by: a module of this package and every module of it that the
module imports, function-level imports included, hashed by source.

Why the import closure rather than the whole package's source: a change to report.py must not throw
away a fine-tuned model, while a change to anything the fine-tune stage runs (the training loop, the
data reader, the model loader) must. The closure is read from the source with `ast`, so it follows
the imports that run, wherever they sit in the module.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "compress"
ROOT = Path(__file__).resolve().parents[1]  # the compress/ folder


@cache
def modules() -> dict[str, Path]:
    """Every module of the package -> its source file."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str) -> set[str]:
    """The package modules `name` imports (top-level and inside functions)."""
    known = modules()
    path = known[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every package module -> the package modules it imports (its own package's __init__ left
    out: importing the folder you are in is not a dependency on its other modules)."""
    return {name: {t for t in imports_of(name) if not name.startswith(t + ".")} for name in modules()}


@cache
def closure(name: str) -> tuple[str, ...]:
    """`name` and every package module it reaches through imports, sorted."""
    seen, todo = {name}, [name]
    while todo:
        for target in imports_of(todo.pop()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return tuple(sorted(seen))


# Modules whose effect on what a stage makes is already in its cache key, or is none: the recipe package
# (a stage's key holds its resolved table, defaults and validators applied) and the progress display.
# Hashing them would rebuild a fine-tuned model for a changed docstring in the schema.
NOT_HASHED = ("compress.recipe", "compress.core.progress")


def hashed(module: str) -> bool:
    """Whether `module`'s source is part of the code hashes of the modules that import it."""
    return not any(module == m or module.startswith(m + ".") for m in NOT_HASHED)


@cache
def code_hash(name: str) -> str:
    """One sha256 over the names and sources of `closure(name)`, less the modules in NOT_HASHED."""
    h = hashlib.sha256()
    for module in closure(name):
        if hashed(module):
            h.update(module.encode() + b"\0" + modules()[module].read_bytes() + b"\0")
    return h.hexdigest()
