"""The recipe's JSON Schema, for editors (completion, hover text, checking as you type) and CI lint.

Made from the pydantic models, so it cannot say something the loader does not; field docstrings are
its descriptions. A recipe that `extends` another may leave out anything its base gives, so such a
recipe is checked against a copy of every definition with no required keys.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from compress.recipe.schema import Recipe, Shape

DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMPOSITION = {
    "extends": {
        "type": "string",
        "description": "A recipe this one builds on, relative to this file: tables merge key by key, "
        "[[targets]] merge by name.",
    },
    "remove_targets": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Names of inherited targets to drop.",
    },
}


class _AsWritten(GenerateJsonSchema):
    """Defaults as a recipe writes them: shapes as "1x128", not [1, 128]."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, Shape):
            return str(dft)
        if isinstance(dft, list | tuple) and dft and all(isinstance(d, Shape) for d in dft):
            return [str(d) for d in dft]
        return super().encode_default(dft)


def recipe_json_schema() -> dict[str, Any]:
    """A complete recipe, or (with `extends`) any part of one plus the composition keys."""
    generated = _one_line_descriptions(Recipe.model_json_schema(schema_generator=_AsWritten))
    defs = generated.pop("$defs", {})
    defs["Recipe"] = generated
    partial = {f"{name}Partial": _partial(body) for name, body in defs.items()}
    partial["RecipePartial"]["properties"].update(COMPOSITION)
    partial["RecipePartial"]["required"] = ["extends"]
    return {
        "$schema": DIALECT,
        "title": "compress recipe",
        "description": generated.get("description", ""),
        "type": "object",
        "if": {"required": ["extends"]},
        "then": {"$ref": "#/$defs/RecipePartial"},
        "else": {"$ref": "#/$defs/Recipe"},
        "$defs": {**defs, **partial},
    }


def _partial(body: dict) -> dict:
    """`body` with no required keys, its references pointing at the partial definitions."""
    out = copy.deepcopy(body)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("required"), list):  # the keyword, not a property named "required"
                node.pop("required")
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = ref + "Partial"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out)
    return out


def _one_line_descriptions(node: Any) -> Any:
    """Docstrings wrap at the code's line length; an editor's hover text should not."""
    if isinstance(node, dict):
        return {
            k: " ".join(v.split()) if k == "description" and isinstance(v, str) else _one_line_descriptions(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_one_line_descriptions(v) for v in node]
    return node
