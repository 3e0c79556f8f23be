"""`compress cache ls | prune | explain`: the stage cache, listed, made smaller, its keys shown."""

from __future__ import annotations

from pathlib import Path

import click

from compress.cli.common import ALLOW_OUTSIDE, OUT, fail_input
from compress.core.errors import CompressError


@click.group()
def cache() -> None:
    """List, explain and prune the stage cache (<out>/.cache)."""


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


@cache.command("ls")
@OUT
def cache_ls(out: Path) -> None:
    """Every entry: kind, key, size, last use, the recipes that used it, and whether a live run has
    it pinned."""
    import time

    from compress.core.cache_admin import entries

    found = entries(out / ".cache")
    click.echo(f"{'kind':10} {'key':12} {'size':>9} {'last used':19} {'pinned':6} recipes")
    for e in found:
        used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.last_used))
        pinned, recipes = "yes" if e.pinned else "", ", ".join(sorted(e.recipes))
        click.echo(f"{e.kind:10} {e.key[:12]} {_size(e.bytes):>9} {used:19} {pinned:6} {recipes}")
    click.echo(f"{len(found)} entries, {_size(sum(e.bytes for e in found))} in {out / '.cache'}")


@cache.command("prune")
@OUT
@click.option(
    "--keep-last", type=click.IntRange(min=0), help="Keep only the entries the N most recent runs used."
)
@click.option("--max-size", help="Remove least recently used entries until the cache fits, e.g. 2G, 500M.")
@click.option("--older-than", type=click.FloatRange(min=0), help="Remove entries unused for this many days.")
def cache_prune(out: Path, keep_last: int | None, max_size: str | None, older_than: float | None) -> None:
    """Make the cache smaller; safe while runs use it (an entry a live run has pinned stays)."""
    from compress.core.cache_admin import parse_size, prune

    if keep_last is None and max_size is None and older_than is None:
        fail_input(CompressError("cache prune: give --keep-last, --max-size or --older-than"))
    try:
        limit = parse_size(max_size) if max_size is not None else None
    except CompressError as exc:
        fail_input(exc)
    root = out / ".cache"
    if not root.is_dir():
        fail_input(CompressError(f"{root}: no cache here (give the output root with --out)"))
    removed, left = prune(root, keep_last=keep_last, max_size=limit, older_than_days=older_than)
    freed = sum(e.bytes for e in removed)
    click.echo(f"removed {len(removed)} entries ({_size(freed)}); {_size(left)} left in {root}")


@cache.command("explain")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.argument("stage")
@OUT
@ALLOW_OUTSIDE
def cache_explain(recipe: Path, stage: str, out: Path, allow_outside: bool) -> None:
    """What STAGE's cache key for RECIPE is made of (JSON): its table, what else it reads, the data
    files' hashes, its inputs (content and the key that made each), the versions, and the hash of
    its code with the modules it covers."""
    import json

    from compress.pipeline.explain import explain
    from compress.recipe.load import load_recipe

    try:
        loaded = load_recipe(recipe, allow_outside=allow_outside)
        click.echo(json.dumps(explain(loaded, out, stage), indent=2))
    except CompressError as exc:
        fail_input(exc)
