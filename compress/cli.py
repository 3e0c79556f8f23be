"""`compress` command line. Exit codes: 0 every required target passes, 1 a gate or stage
failed (the bundle is still written), 2 bad input or configuration."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from compress.core.errors import CompressError

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def _fail_input(exc: Exception) -> None:
    """One line, always: control characters from a recipe or data file are shown escaped, so
    they can neither split the message nor drive the terminal."""
    text = "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in str(exc))
    click.echo(f"error: {text}", err=True)
    sys.exit(EXIT_BAD_INPUT)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so every half-written folder is removed."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


_ALLOW_OUTSIDE = click.option(
    "--allow-outside",
    is_flag=True,
    help="Let the recipe name absolute paths or paths with '..' (by default every path it names "
    "must lie inside its own folder tree).",
)


@click.group()
@click.version_option(package_name="compress")
def main() -> None:
    """Compress, export and gate transformer classifiers from one TOML recipe."""


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@_ALLOW_OUTSIDE
def validate(recipe: Path, allow_outside: bool) -> None:
    """Check RECIPE (schema, files, columns, labels) without running anything."""
    from compress.recipe.load import load_recipe
    from compress.recipe.stages import enabled_stages

    try:
        loaded = load_recipe(recipe, allow_outside=allow_outside)
    except CompressError as exc:
        _fail_input(exc)
    stages = [s.name for s in enabled_stages(loaded.recipe)]
    click.echo(
        f"ok: {recipe}: recipe '{loaded.name}', stages {', '.join(stages) or 'none'}, "
        f"{len(loaded.recipe.targets)} targets"
    )


@main.command()
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
@_ALLOW_OUTSIDE
def run(
    recipe: Path,
    out: Path | None,
    no_cache: bool,
    only: str | None,
    start: str | None,
    quiet: bool,
    reproduce: bool,
    allow_outside: bool,
) -> None:
    """Run RECIPE end to end and write a bundle; exit 1 if a required target fails."""
    if only and start:
        _fail_input(CompressError("give --only or --from, not both"))
    signal.signal(signal.SIGTERM, _on_sigterm)
    world = _join_launch()
    if not world.is_main:
        _serve_training(world)
    from compress.core.progress import Reporter
    from compress.models import distributed

    reporter = Reporter(quiet=quiet)
    try:
        _run_main(recipe, out, no_cache, only, start, reporter, reproduce, allow_outside, world)
    finally:
        distributed.finish()


def _join_launch():
    """This process's place under torchrun / accelerate launch (a world of one otherwise)."""
    from compress.models import distributed

    try:
        return distributed.start()
    except (RuntimeError, ValueError, OSError) as exc:
        _fail_input(CompressError(f"could not join the launcher's process group: {exc}"))


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


def _run_main(recipe, out, no_cache, only, start, reporter, reproduce, allow_outside, world) -> None:
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
            loaded = load_recipe(recipe, allow_outside=allow_outside)
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
        _fail_input(exc)
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"
        click.echo(
            f"error: {what}; the unfinished stage was discarded, completed stages are cached: "
            "re-run the same command to resume",
            err=True,
        )
        sys.exit(143 if isinstance(exc, _Terminated) else 130)
    click.echo(f"{'PASS' if outcome.verdict == 'pass' else 'FAIL'}: {outcome.bundle / 'report.md'}")
    sys.exit(EXIT_PASS if outcome.verdict == "pass" else EXIT_FAIL)


def _tolerance_options(f):
    from compress.core.records import Tolerances

    defaults = Tolerances()
    f = click.option(
        "--max-size-increase",
        type=click.FloatRange(min=0),
        default=defaults.max_size_increase,
        show_default=True,
        help="Largest allowed size growth, as a fraction (0.05 = 5%).",
    )(f)
    f = click.option(
        "--max-latency-increase",
        type=click.FloatRange(min=0),
        default=defaults.max_latency_increase,
        help="Largest allowed latency growth, as a fraction (0.5 = 1.5x); not judged when absent.",
    )(f)
    return click.option(
        "--max-metric-drop",
        type=click.FloatRange(min=0),
        default=defaults.max_metric_drop,
        show_default=True,
        help="Largest allowed metric drop per target, in points.",
    )(f)


@main.command()
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@_tolerance_options
def compare(
    baseline: Path,
    candidate: Path,
    fmt: str,
    max_metric_drop: float,
    max_latency_increase: float | None,
    max_size_increase: float | None,
) -> None:
    """Compare two bundles (or manifests) target by target; exit 1 if CANDIDATE regressed."""
    import json

    from compress.core.records import Tolerances, load_manifest
    from compress.output.report import blocks_markdown, comparison_blocks
    from compress.verdict.regression import compare

    try:
        old, new = load_manifest(baseline), load_manifest(candidate)
    except CompressError as exc:
        _fail_input(exc)
    tolerances = Tolerances(
        max_metric_drop=max_metric_drop,
        max_latency_increase=max_latency_increase,
        max_size_increase=max_size_increase,
    )
    result = compare(old, new, tolerances)
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo("\n".join(["## compress compare", "", *blocks_markdown(comparison_blocks(result))]))
    sys.exit(EXIT_FAIL if result.breached else EXIT_PASS)


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
def report(bundle: Path) -> None:
    """Print a bundle's report as terminal tables."""
    from rich.console import Console

    from compress.core.records import load_manifest
    from compress.output.report import print_rich

    try:
        manifest = load_manifest(bundle)
    except CompressError as exc:
        _fail_input(exc)
    print_rich(manifest, Console(width=None if sys.stdout.isatty() else 160))  # CI logs: wide tables


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
def verify(bundle: Path) -> None:
    """Check every file of BUNDLE against its manifest and run each ONNX model once; exit 1 naming
    the first bad file."""
    from compress.output.verify import BundleInvalid, verify_bundle

    try:
        summary = verify_bundle(bundle)
    except BundleInvalid as exc:
        click.echo(f"FAIL: {exc}", err=True)
        sys.exit(EXIT_FAIL)
    click.echo(
        f"ok: {bundle}: {summary['files']} files match the manifest, "
        f"{len(summary['models_run'])} ONNX models load and run"
    )


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--engine",
    "engine_path",
    type=click.Path(path_type=Path),
    help="Where to write the engine (default: <folder name>.engine here; the bundle stays untouched).",
)
def engine(folder: Path, engine_path: Path | None) -> None:
    """Build the TensorRT engine of a bundle's tensorrt target FOLDER on this machine's GPU, from
    its model.onnx and the shape range in engine.json, then check it against the same graph in ONNX
    Runtime on sample batches. Exit 1 when no engine can be built here, saying why."""
    import json

    from compress.runtimes import tensorrt_engine as tensorrt

    record_path = folder / "engine.json"
    if not record_path.is_file() or not (folder / "model.onnx").is_file():
        _fail_input(
            CompressError(f"{folder}: not a tensorrt target folder (needs model.onnx and engine.json)")
        )
    record = json.loads(record_path.read_text())
    reason = tensorrt.unavailable()
    if reason:
        click.echo(f"FAIL: not-built: {reason}", err=True)
        sys.exit(EXIT_FAIL)
    engine_path = engine_path or Path(f"{folder.resolve().name}.engine")
    summary = tensorrt.build_and_check(folder, engine_path, record["profile"])
    click.echo(json.dumps(summary, indent=2))
    sys.exit(EXIT_PASS if summary["passed"] else EXIT_FAIL)
