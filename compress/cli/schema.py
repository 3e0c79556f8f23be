"""`compress schema`: the recipe's JSON Schema, for an editor or a CI lint step."""

from __future__ import annotations

import json

import click


@click.command()
def schema() -> None:
    """Print the recipe's JSON Schema (descriptions included). Save it and point your editor at it,
    e.g. a `#:schema ./recipe.schema.json` first line for taplo / Even Better TOML."""
    from compress.recipe.editor_schema import recipe_json_schema

    click.echo(json.dumps(recipe_json_schema(), indent=2))
