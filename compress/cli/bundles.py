"""Commands on finished bundles: `compare`, `report`, `verify`, and `engine` (build a bundled
TensorRT target's engine on the device)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compress.cli.common import EXIT_FAIL, EXIT_PASS, fail_input
from compress.core.errors import CompressError


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


@click.command()
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
        fail_input(exc)
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


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
def report(bundle: Path) -> None:
    """Print a bundle's report as terminal tables."""
    from rich.console import Console

    from compress.core.records import load_manifest
    from compress.output.report import print_rich

    try:
        manifest = load_manifest(bundle)
    except CompressError as exc:
        fail_input(exc)
    print_rich(manifest, Console(width=None if sys.stdout.isatty() else 160))  # CI logs: wide tables


@click.command()
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


@click.command()
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
        fail_input(
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
