"""`compress schema` is valid JSON Schema that accepts every shipped recipe and refuses broken ones,
and the README's recipe reference names exactly the keys it has, with the same defaults."""

import json
import re
import tomllib

import jsonschema
import pytest

from compress.recipe.editor_schema import recipe_json_schema
from tests.conftest import REPO, run_cli, smoke_text

SCHEMA = recipe_json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
SHIPPED = sorted((REPO / "recipes").glob("*.toml"))


def errors(raw: dict) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(raw)]


def test_the_cli_prints_a_valid_json_schema():
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed == json.loads(json.dumps(SCHEMA))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_recipe_is_accepted(path):
    assert errors(tomllib.loads(path.read_text())) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r["finetune"].update(epoch=2), "epoch"),
        (lambda r: r["targets"][0].update(runtime="tflite"), "tflite"),
        (lambda r: r["data"].pop("train"), "'train' is a required property"),
        (lambda r: r["targets"][0].update(profile={"min": "16"}), "16"),
        (lambda r: r.update(remove_targets=["torch-fp32"]), "remove_targets"),
        (lambda r: r["finetune"].update(epochs="3"), "'3'"),
    ],
    ids=[
        "unknown key",
        "bad enum",
        "missing required",
        "bad shape",
        "remove_targets without extends",
        "type",
    ],
)
def test_broken_recipes_are_refused(edit, expected):
    raw = tomllib.loads(smoke_text())
    assert errors(raw) == []
    edit(raw)
    found = errors(raw)
    assert found and any(expected in e for e in found), found


def test_a_recipe_that_extends_may_leave_out_what_its_base_gives():
    assert errors({"extends": "base.toml", "targets": [{"name": "t", "max_accuracy_drop": 2.0}]}) == []
    assert errors({"extends": "base.toml", "finetune": {"epochs": 2}, "remove_targets": ["a"]}) == []
    assert errors({"extends": "base.toml", "finetune": {"epochs": "two"}})
    assert errors({"extends": "base.toml", "finetune": {"epoch": 2}})


def test_fields_carry_their_descriptions():
    target = SCHEMA["$defs"]["Target"]["properties"]
    assert "straddles" in target["on_inconclusive"]["description"]
    undocumented = [
        f"{name}.{key}"
        for name, body in SCHEMA["$defs"].items()
        if not name.endswith("Partial")
        for key, prop in body.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []


# ---- the README's reference table against the schema -------------------------------------------

ABSENT = object()


def readme_table() -> dict[str, list[tuple[list[str], str]]]:
    """`[table]` -> [(keys, default cell)] from README's "Recipe reference" table."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Recipe reference", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[tuple[list[str], str]]] = {}
    table = None
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not line.startswith("|") or set(cells[0]) <= {"-"} and cells[0]:
            continue
        if cells[0] == "table":
            continue
        if cells[0]:
            table = cells[0].strip("`")
        keys = re.findall(r"`([a-z0-9_]+)(?: = [^`]*)?`", cells[1])
        if keys:
            rows.setdefault(table, []).append((keys, cells[2]))
    return rows


def schema_table(table: str) -> dict:
    """The schema of `[table]` / `[[table]]` (dotted tables walked down)."""
    defs = SCHEMA["$defs"]
    node = defs["Recipe"]
    for part in table.strip("[]").split("."):
        prop = node["properties"][part]
        if prop.get("type") == "array":
            prop = prop["items"]
        ref = prop.get("$ref") or next(a["$ref"] for a in prop.get("anyOf", []) if "$ref" in a)
        node = defs[ref.rsplit("/", 1)[1]]
    return node


def is_table(prop: dict) -> bool:
    return "$ref" in prop or any("$ref" in a for a in prop.get("anyOf", []))


def split_top(cell: str) -> list[str]:
    """Split a defaults cell on commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, False, ""
    for ch in cell:
        if ch == '"':
            quote = not quote
        elif not quote and ch in "[{":
            depth += 1
        elif not quote and ch in "]}":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [*parts, current.strip()]


def toml_value(text: str):
    try:
        return tomllib.loads(f"v = {text.strip('`')}")["v"]
    except tomllib.TOMLDecodeError:
        return ABSENT


README = readme_table()
INLINE = {"[model]": {"tiny"}, "[[targets]]": {"profile"}}  # inline tables described in their row


@pytest.mark.parametrize("table", sorted(README))
def test_readme_names_exactly_the_schema_keys(table):
    node = schema_table(table)
    props = node["properties"]
    documented = {k for keys, _ in README[table] for k in keys}
    if table == "[prune.recovery]":  # "as [finetune], plus ..."
        documented |= set(schema_table("[finetune]")["properties"])
    own_tables = {k for k, p in props.items() if is_table(p)} - INLINE.get(table, set())
    assert documented - set(props) == set(), f"README documents keys {table} does not have"
    assert set(props) - own_tables - documented == set(), f"{table} keys missing from the README"


def test_readme_defaults_match_the_schema():
    checked = 0
    for table, rows in README.items():
        props = schema_table(table)["properties"]
        required = set(schema_table(table).get("required", []))
        for keys, cell in rows:
            values = split_top(cell)
            if len(values) != len(keys):
                continue
            for key, value in zip(keys, values, strict=True):
                if key not in props:
                    continue
                if value == "required":
                    assert key in required, f"{table} {key}: README says required"
                    continue
                expected = toml_value(value)
                if expected is ABSENT:
                    continue
                assert props[key].get("default", ABSENT) == expected, f"{table} {key}: README default {value}"
                checked += 1
    assert checked >= 60, f"only {checked} defaults compared: the table's format changed?"
