"""`compress validate` and `compress run`: check a recipe, or run it end to end into a bundle."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compress.cli.common import ALLOW_OUTSIDE, EXIT_FAIL, EXIT_PASS, fail_input
from compress.core import interrupt
from compress.core.errors import CompressError
from compress.core.interrupt import Terminated

SET = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe key (a TOML value; a bare word is a string), applied after extends and "
    "before validation: finetune.epochs=2, targets.NAME.max_accuracy_drop=0.5. Repeatable.",
)


@click.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@SET
@click.option(
    "--print", "show", is_flag=True, help="Print the resolved recipe (extends and --set applied) as TOML."
)
@ALLOW_OUTSIDE
def validate(recipe: Path, overrides: tuple[str, ...], show: bool, allow_outside: bool) -> None:
    """Check RECIPE (schema, files, columns, labels) without running anything."""
    from compress.recipe.load import load_recipe
    from compress.recipe.stages import enabled_stages

    try:
        loaded = load_recipe(recipe, allow_outside=allow_outside, overrides=overrides)
    except CompressError as exc:
        fail_input(exc)
    if show:
        click.echo(loaded.text, nl=not loaded.text.endswith("\n"))
        return
    stages = [s.name for s in enabled_stages(loaded.recipe)]
    click.echo(
        f"ok: {recipe}: recipe '{loaded.name}', stages {', '.join(stages) or 'none'}, "
        f"{len(loaded.recipe.targets)} targets"
    )


@click.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output root instead of [output] dir (default artifacts/)."
)
@click.option("--no-cache", is_flag=True, help="Re-run every stage even when a cached output matches.")
@click.option("--only", metavar="STAGE", help="Run only this stage; earlier ones must be cached.")
@click.option("--from", "start", metavar="STAGE", help="Run this stage and every later one.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars; just the verdict.")
@click.option(
    "--reproduce",
    "reproduce",
    is_flag=True,
    help="RECIPE is a bundle: rerun its recorded recipe on the same data, rebuilding every stage, "
    "and compare the result with that bundle.",
)
@SET
@ALLOW_OUTSIDE
def run(
    recipe: Path,
    out: Path | None,
    no_cache: bool,
    only: str | None,
    start: str | None,
    quiet: bool,
    reproduce: bool,
    overrides: tuple[str, ...],
    allow_outside: bool,
) -> None:
    """Run RECIPE end to end and write a bundle; exit 1 if a required target fails."""
    if only and start:
        fail_input(CompressError("give --only or --from, not both"))
    if reproduce and overrides:
        fail_input(CompressError("--reproduce reruns the bundle's recorded recipe: --set cannot be given"))
    interrupt.install()
    world = _join_launch()
    if not world.is_main:
        _serve_training(world)
    from compress.core.progress import Reporter
    from compress.models import distributed

    reporter = Reporter(quiet=quiet)
    try:
        _run_main(recipe, out, no_cache, only, start, reporter, reproduce, overrides, allow_outside, world)
    finally:
        distributed.finish()


def _join_launch():
    """This process's place under torchrun / accelerate launch (a world of one otherwise)."""
    from compress.models import distributed

    try:
        return distributed.start()
    except (RuntimeError, ValueError, OSError) as exc:
        fail_input(CompressError(f"could not join the launcher's process group: {exc}"))


def _serve_training(world) -> None:
    """Ranks other than 0 only train: each job rank 0 sends, until it says stop."""
    from compress.core.progress import Reporter
    from compress.models import distributed
    from compress.models.training import serve

    try:
        serve(Reporter(quiet=True))
    except KeyboardInterrupt:
        sys.exit(130)
    except RuntimeError as exc:  # rank 0 went away mid-job: the launcher reports the root cause
        click.echo(f"error: rank {world.rank}: training stopped: {exc}".splitlines()[0], err=True)
        sys.exit(EXIT_FAIL)
    distributed.finish()
    sys.exit(EXIT_PASS)


def _run_main(
    recipe, out, no_cache, only, start, reporter, reproduce, overrides, allow_outside, world
) -> None:
    from compress.models import distributed
    from compress.pipeline import runner
    from compress.recipe.load import load_recipe

    if (warning := distributed.single_process_warning()) is not None:
        reporter.info(f"[yellow]⚠[/] {warning}")
    elif world.size > 1:
        reporter.info(f"{world.size} processes ({world.backend}): all train, rank 0 runs everything else")
    try:
        baseline = None
        if reproduce:
            from compress.output.reproduce import recorded_recipe

            loaded, notes = recorded_recipe(recipe, allow_outside=allow_outside)
            baseline, no_cache = recipe, True
            for note in notes:
                reporter.info(f"[yellow]⚠[/] {note}")
        else:
            loaded = load_recipe(recipe, allow_outside=allow_outside, overrides=overrides)
        outcome = runner.run(
            loaded,
            out_root=out,
            use_cache=not no_cache,
            only=only,
            start=start,
            reporter=reporter,
            regression_baseline=baseline,
        )
    except CompressError as exc:
        fail_input(exc)
    except OSError as exc:  # the disk or folder failed where no step expected it: still one line
        from compress.core.cache import STORAGE_ERRORS, storage_error

        if exc.errno not in STORAGE_ERRORS:
            raise
        fail_input(storage_error(exc, f"into {out or 'the output folder'}"))
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        click.echo(
            f"error: {what}; the unfinished stage was discarded, completed stages are cached: "
            "re-run the same command to resume",
            err=True,
        )
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    click.echo(f"{'PASS' if outcome.verdict == 'pass' else 'FAIL'}: {outcome.bundle / 'report.md'}")
    sys.exit(EXIT_PASS if outcome.verdict == "pass" else EXIT_FAIL)
