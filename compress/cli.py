"""`compress` command line. Exit codes: 0 every required target passes, 1 a gate or stage
failed (the bundle is still written), 2 bad input or configuration."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compress.errors import CompressError

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def _fail_input(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.group()
@click.version_option(package_name="compress")
def main() -> None:
    """Compress, export and gate transformer classifiers from one TOML recipe."""


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
def validate(recipe: Path) -> None:
    """Check RECIPE (schema, files, columns, labels) without running anything."""
    from compress.recipe import load_recipe

    try:
        loaded = load_recipe(recipe)
    except CompressError as exc:
        _fail_input(exc)
    stages = [s for s in _stage_names() if getattr(loaded.recipe, s) is not None]
    click.echo(
        f"ok: {recipe}: recipe '{loaded.name}', stages {', '.join(stages) or 'none'}, "
        f"{len(loaded.recipe.targets)} targets"
    )


def _stage_names() -> tuple[str, ...]:
    from compress.stages import STAGES

    return STAGES


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output root instead of [output] dir (default artifacts/)."
)
@click.option("--no-cache", is_flag=True, help="Re-run every stage even when a cached output matches.")
@click.option("--only", metavar="STAGE", help="Run only this stage; earlier ones must be cached.")
@click.option("--from", "start", metavar="STAGE", help="Run this stage and every later one.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars; just the verdict.")
def run(
    recipe: Path, out: Path | None, no_cache: bool, only: str | None, start: str | None, quiet: bool
) -> None:
    """Run RECIPE end to end and write a bundle; exit 1 if a required target fails."""
    if only and start:
        _fail_input(CompressError("give --only or --from, not both"))
    from compress import runner
    from compress.progress import Reporter
    from compress.recipe import load_recipe

    try:
        loaded = load_recipe(recipe)
        outcome = runner.run(
            loaded,
            out_root=out,
            use_cache=not no_cache,
            only=only,
            start=start,
            reporter=Reporter(quiet=quiet),
        )
    except CompressError as exc:
        _fail_input(exc)
    except KeyboardInterrupt:
        click.echo(
            "error: interrupted; completed stages are cached, re-run the same command to resume", err=True
        )
        sys.exit(130)
    click.echo(f"{'PASS' if outcome.verdict == 'pass' else 'FAIL'}: {outcome.bundle / 'report.md'}")
    sys.exit(EXIT_PASS if outcome.verdict == "pass" else EXIT_FAIL)
