"""What every command shares: exit codes, the one-line error, signal handling, common options."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def fail_input(exc: Exception) -> NoReturn:
    """One line, always: control characters from a recipe or data file are shown escaped, so
    they can neither split the message nor drive the terminal."""
    text = "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in str(exc))
    click.echo(f"error: {text}", err=True)
    sys.exit(EXIT_BAD_INPUT)


ALLOW_OUTSIDE = click.option(
    "--allow-outside",
    is_flag=True,
    help="Let the recipe name absolute paths or paths with '..' (by default every path it names "
    "must lie inside its own folder tree).",
)

OUT = click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("artifacts"),
    show_default=True,
    help="The output root (bundles in <out>/<recipe>/, the stage cache in <out>/.cache).",
)
