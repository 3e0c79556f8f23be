"""Recipes that extend others, and --set: the merge rules, the errors, and a run that records both."""

import tomllib

import pytest

from compress.core.errors import CompressError
from compress.recipe.load import load_recipe
from tests.conftest import REPO, fast_recipe, link_data, load_manifest, run_cli, smoke_text

CHILD = """extends = "recipe.toml"

[finetune]
batch_size = 16

[[targets]]
name = "x86-onnxruntime-int8"
max_accuracy_drop = 7.5

[[targets]]
name = "extra-torch"
runtime = "torch"
precision = "fp32"
max_accuracy_drop = 9.0
"""


def targets(loaded) -> dict:
    return {t.name: t for t in loaded.recipe.targets}


def test_tables_merge_key_by_key_and_targets_by_name(write_recipe):
    write_recipe(smoke_text())
    base = load_recipe(write_recipe(smoke_text()))
    child = load_recipe(write_recipe(CHILD, "child.toml"))
    assert child.recipe.finetune.batch_size == 16
    # keys the child does not write are the base's
    assert child.recipe.finetune.epochs == base.recipe.finetune.epochs
    assert child.recipe.finetune.learning_rate == base.recipe.finetune.learning_rate
    got, before = targets(child), targets(base)
    assert list(got) == [*before, "extra-torch"], "same name overrides in place; a new name is appended"
    assert got["x86-onnxruntime-int8"].max_accuracy_drop == 7.5
    assert got["x86-onnxruntime-int8"].runtime == "onnxruntime"
    assert got["torch-fp32"] == before["torch-fp32"]
    assert [c.path.name for c in child.chain] == ["child.toml", "recipe.toml"]


def test_remove_targets_drops_inherited_ones(write_recipe):
    write_recipe(smoke_text())
    child = load_recipe(write_recipe('extends = "recipe.toml"\nremove_targets = ["torch-fp32"]\n', "c.toml"))
    assert "torch-fp32" not in targets(child) and len(child.recipe.targets) == 2
    with pytest.raises(CompressError, match="no inherited target named nope"):
        load_recipe(write_recipe('extends = "recipe.toml"\nremove_targets = ["nope"]\n', "d.toml"))
    with pytest.raises(CompressError, match="remove_targets .*needs extends"):
        load_recipe(write_recipe('remove_targets = ["torch-fp32"]\n' + smoke_text(), "e.toml"))


def test_chains_resolve_and_cycles_are_refused(write_recipe):
    write_recipe(smoke_text())
    write_recipe('extends = "recipe.toml"\n[finetune]\nbatch_size = 16\n', "middle.toml")
    top = load_recipe(write_recipe('extends = "middle.toml"\n[finetune]\nepochs = 2\n', "top.toml"))
    assert (top.recipe.finetune.batch_size, top.recipe.finetune.epochs) == (16, 2)
    assert [c.path.name for c in top.chain] == ["top.toml", "middle.toml", "recipe.toml"]
    write_recipe('extends = "b.toml"\n', "a.toml")
    write_recipe('extends = "a.toml"\n', "b.toml")
    with pytest.raises(CompressError, match=r"cycle: a\.toml -> b\.toml -> a\.toml"):
        load_recipe(write_recipe('extends = "a.toml"\n', "start.toml"))


def test_a_missing_or_escaping_base_names_the_line(write_recipe):
    with pytest.raises(CompressError, match=r"extends \(line 2\): file not found"):
        load_recipe(write_recipe('# x\nextends = "gone.toml"\n', "c.toml"))
    with pytest.raises(CompressError, match=r"extends \(line 1\): \.\./base\.toml leads outside"):
        load_recipe(write_recipe('extends = "../base.toml"\n', "c.toml"))


def test_errors_point_at_the_file_that_wrote_the_key(write_recipe):
    text = smoke_text(**{"max_length = 64": "max_length = 64\nlabel_colum = 'x'"})
    write_recipe(text)
    line = text.splitlines().index("label_colum = 'x'") + 1
    with pytest.raises(CompressError) as info:
        load_recipe(write_recipe(CHILD.replace("batch_size = 16", "batch_size = -1"), "child.toml"))
    msg = str(info.value)
    assert f"data.label_colum (recipe.toml line {line}): unknown key" in msg
    assert "finetune.batch_size (child.toml line 4)" in msg


def test_paths_in_a_base_are_relative_to_the_base(tmp_path):
    (tmp_path / "team").mkdir()
    link_data(tmp_path / "team")
    (tmp_path / "team" / "base.toml").write_text(smoke_text())
    (tmp_path / "child.toml").write_text('extends = "team/base.toml"\n')
    loaded = load_recipe(tmp_path / "child.toml")
    assert loaded.recipe.data.train == (tmp_path / "team" / "data" / "sst2" / "train.tsv").resolve()
    assert 'train = "team/data/sst2/train.tsv"' in loaded.text, "the kept copy is rebased too"


@pytest.mark.parametrize(
    ("items", "check"),
    [
        (["finetune.epochs=2"], lambda r: r.finetune.epochs == 2),
        (["targets.torch-fp32.max_accuracy_drop=0.5"], lambda r: r.targets[0].max_accuracy_drop == 0.5),
        (["output.name=nightly"], lambda r: r.output.name == "nightly"),
        (['quantize.check_shapes=["1x16"]'], lambda r: [str(s) for s in r.quantize.check_shapes] == ["1x16"]),
        (["evaluation.release_matrix.rows=8"], lambda r: r.evaluation.release_matrix.rows == 8),
        (["finetune.epochs=2", "finetune.epochs=5"], lambda r: r.finetune.epochs == 5),
    ],
)
def test_set_overrides_after_extends(write_recipe, items, check):
    write_recipe(smoke_text())
    loaded = load_recipe(write_recipe(CHILD, "child.toml"), overrides=items)
    assert check(loaded.recipe)
    assert list(loaded.overrides) == items
    assert tomllib.loads(loaded.text), "the kept copy is TOML"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("finetune.epoch=2", r"finetune\.epoch \(--set finetune\.epoch=2\): unknown key"),
        ("finetune.epochs=two", r"finetune\.epochs \(--set finetune\.epochs=two\): .*integer"),
        ("targets.nope.max_accuracy_drop=1", r"no target named 'nope' \(targets: torch-fp32,"),
        ("finetune", r"--set finetune: expected KEY=VALUE"),
        ("finetune.epochs.x=1", r"finetune\.epochs is not a table"),
        ("targets=1", r"targets"),
    ],
)
def test_set_errors_name_the_key(write_recipe, item, message):
    with pytest.raises(CompressError, match=message):
        load_recipe(write_recipe(smoke_text()), overrides=[item])


def test_the_shipped_recipes_inherit_instead_of_repeating():
    """Each recipe that builds on another writes only what differs: no [model] or [data] of its own."""
    extending = {}
    for path in sorted((REPO / "recipes").glob("*.toml")):
        raw = tomllib.loads(path.read_text())
        if "extends" in raw:
            extending[path.name] = raw
            assert "model" not in raw and "data" not in raw, path.name
    assert {"sst2-minilm-int8.toml", "sst2-minilm-pruned.toml", "sst2-minilm-pruned-int8.toml"} <= set(
        extending
    )
    assert extending["sst2-minilm-pruned-int8.toml"]["extends"] == "sst2-minilm-pruned.toml"
    assert len(extending) >= 5


def test_validate_print_shows_the_resolved_recipe(write_recipe):
    write_recipe(smoke_text())
    child = write_recipe(CHILD, "child.toml")
    result = run_cli("validate", str(child), "--set", "finetune.epochs=4", "--print")
    assert result.returncode == 0, result.stderr
    shown = tomllib.loads(result.stdout)
    assert (
        "extends" not in shown and shown["finetune"]["epochs"] == 4 and shown["finetune"]["batch_size"] == 16
    )
    assert shown["model"] == tomllib.loads(smoke_text())["model"]
    bad = run_cli("validate", str(child), "--set", "finetune.epoch=4")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_a_run_records_and_reproduces_extends_and_set(tmp_path, out):
    """The Must show: extends + two --set run; the bundle's recipe shows them; --reproduce reruns it."""
    link_data(tmp_path)
    fast_recipe(tmp_path, "base")
    child = tmp_path / "child.toml"
    child.write_text('extends = "base.toml"\n[finetune]\nbatch_size = 16\n')
    sets = ["finetune.learning_rate=0.003", "targets.x86-onnxruntime-int8.max_accuracy_drop=40"]
    result = run_cli("run", str(child), "--out", str(out), *[a for s in sets for a in ("--set", s)])
    assert result.returncode in (0, 1), result.stderr
    bundle = out / "child" / "latest"
    manifest = load_manifest(bundle)
    recorded = manifest["recipe"]
    assert recorded["overrides"] == sets
    assert [c["path"] for c in recorded["chain"]] == [
        str(child.resolve()),
        str((tmp_path / "base.toml").resolve()),
    ]
    assert recorded["resolved"]["finetune"]["learning_rate"] == 0.003
    assert recorded["resolved"]["finetune"]["batch_size"] == 16
    copy = tomllib.loads((bundle / "recipe.toml").read_text())
    assert copy["finetune"]["learning_rate"] == 0.003 and "extends" not in copy
    int8 = next(t for t in copy["targets"] if t["name"] == "x86-onnxruntime-int8")
    assert int8["max_accuracy_drop"] == 40

    child.write_text('extends = "base.toml"\n[finetune]\nbatch_size = 8\n')  # edited since: not used
    again = run_cli("run", "--reproduce", str(bundle), "--out", str(tmp_path / "again"))
    assert again.returncode == result.returncode, again.stderr
    # the console wraps long paths anywhere, even inside a word
    assert "child.tomlhaschangedsincethebundle" in "".join(again.stderr.split())
    rerun = load_manifest(tmp_path / "again" / "child" / "latest")
    assert rerun["recipe"]["resolved"] == recorded["resolved"]
    assert rerun["recipe"]["chain"] == recorded["chain"] and rerun["recipe"]["overrides"] == sets
    verdicts = {t["name"]: t["verdict"] for t in manifest["targets"]}
    assert {t["name"]: t["verdict"] for t in rerun["targets"]} == verdicts
    assert [t["metric"] for t in rerun["targets"]] == [t["metric"] for t in manifest["targets"]]
    assert [t["artifact_sha256"] for t in rerun["targets"]] == [
        t["artifact_sha256"] for t in manifest["targets"]
    ]
