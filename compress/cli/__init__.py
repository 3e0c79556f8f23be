"""`compress` command line. Exit codes: 0 every required target passes, 1 a gate or stage failed
(the bundle is still written), 2 bad input or configuration (one `error:` line)."""

from __future__ import annotations

import click

from compress.cli.bundles import compare, engine, report, verify
from compress.cli.cache import cache
from compress.cli.predict import predict
from compress.cli.run import run, validate
from compress.cli.schema import schema


@click.group()
@click.version_option(package_name="compress")
def main() -> None:
    """Compress, export and gate transformer classifiers from one TOML recipe."""


for command in (validate, run, compare, report, verify, engine, cache, predict, schema):
    main.add_command(command)
