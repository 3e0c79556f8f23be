"""Where a key is written: every way TOML lets a recipe write a key, and the line an error names."""

from dataclasses import dataclass

import pytest

from compress.recipe.locate import key_lines, key_text, line_of

RECIPE = """\
# a comment [not a table]
[model]
tiny = { hidden_size = 32, num_hidden_layers = 2 }

[prune]
heads_fraction = 0.5
recovery.temperature = 3.0

[prune.recovery]
epochs = 2
"quoted key" = 1

[quantize]
check_shapes = [
  "1x16",   # [a bracket in a comment]
  "8x64",
]
max_trials = 4

[[targets]]
name = "a"

[[targets]]
name = "b"
isa = "avx2"

[targets.profile]
min = "1x16"
"""


@dataclass(frozen=True)
class Case:
    name: str
    path: tuple
    line: int | None


CASES = [
    Case("a plain key", ("prune", "heads_fraction"), 6),
    Case("a dotted key under its table", ("prune", "recovery", "temperature"), 7),
    Case("a dotted table's own header", ("prune", "recovery"), 9),
    Case("a key of a dotted table", ("prune", "recovery", "epochs"), 10),
    Case("a quoted key", ("prune", "recovery", "quoted key"), 11),
    Case("an unwritten key of a dotted table: its header", ("prune", "recovery", "batch_size"), 9),
    Case("a key inside an inline table: the inline table's line", ("model", "tiny", "hidden_size"), 3),
    Case("a key after a multi-line array", ("quantize", "max_trials"), 18),
    Case("an item of a multi-line array: the array's line", ("quantize", "check_shapes", 1), 14),
    Case("the first array-of-tables entry", ("targets", 0, "name"), 21),
    Case("the second entry's key", ("targets", 1, "isa"), 25),
    Case("a sub-table of the second entry", ("targets", 1, "profile", "min"), 28),
    Case("an unwritten key of an entry: the entry's header", ("targets", 0, "runtime"), 20),
    Case("a table that is not written", ("export", "opset"), None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_line_of(case):
    assert line_of(case.path, RECIPE) == case.line


def test_comments_and_array_items_are_not_keys():
    keys = key_lines(RECIPE)
    assert ("not a table",) not in keys and ("a bracket in a comment",) not in keys
    assert ("quantize", "1x16") not in keys


def test_key_text_reads_as_written():
    assert key_text(("targets", 1, "isa")) == "targets[1].isa"
    assert key_text(("prune", "recovery", "epochs")) == "prune.recovery.epochs"
    assert key_text(()) == "(top level)"
