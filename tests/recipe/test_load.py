import pytest

from compress.core.errors import CompressError
from compress.recipe.load import load_recipe
from tests.conftest import link_data, smoke_text


def problems(write_recipe, text: str) -> str:
    with pytest.raises(CompressError) as info:
        load_recipe(write_recipe(text))
    return str(info.value)


def test_smoke_recipe_is_valid(write_recipe):
    loaded = load_recipe(write_recipe(smoke_text()))
    assert loaded.name == "recipe"
    assert loaded.recipe.data.train.is_absolute()
    assert len(loaded.sha256()) == 64


def test_unknown_key_names_key_and_line(write_recipe):
    text = smoke_text(**{"max_length = 64": "max_length = 64\nlabel_colum = 'x'"})
    msg = problems(write_recipe, text)
    line = text.splitlines().index("label_colum = 'x'") + 1
    assert "data.label_colum" in msg and f"line {line}" in msg and "unknown key" in msg


def test_wrong_type_names_key_and_value(write_recipe):
    msg = problems(write_recipe, smoke_text(**{"batch_size = 32": 'batch_size = "big"'}))
    assert "finetune.batch_size" in msg and '"big"' in msg


def test_bad_enum_lists_valid_values(write_recipe):
    msg = problems(write_recipe, smoke_text(**{'runtime = "torch"': 'runtime = "tflite"'}))
    assert "targets[0].runtime" in msg and "'onnxruntime'" in msg


def test_all_problems_reported_at_once(write_recipe):
    text = smoke_text(**{"batch_size = 32": "batch_size = -1", "opset = 18": "opset = 9"})
    msg = problems(write_recipe, text)
    assert "finetune.batch_size" in msg and "export.opset" in msg


def test_missing_data_file(write_recipe):
    msg = problems(write_recipe, smoke_text(**{"test.tsv": "nope.tsv"}))
    assert "data.test" in msg and "nope.tsv" in msg and "not found" in msg


def test_missing_label_column(write_recipe):
    msg = problems(write_recipe, smoke_text(**{'label_column = "label"': 'label_column = "sentiment"'}))
    assert "data.label_column" in msg and "'sentiment' is not a column" in msg and "sentence, label" in msg


def test_label_not_in_label_names(write_recipe):
    text = smoke_text(**{"max_length = 64": 'max_length = 64\nlabel_names = ["neg", "pos"]'})
    msg = problems(write_recipe, text)
    assert "data.label_names" in msg and "label '1' is not in label_names" in msg


def test_model_needs_exactly_one_source(write_recipe):
    text = smoke_text(**{"[model]\n": '[model]\npackaged = "all-MiniLM-L6-v2"\n'})
    assert "exactly one of packaged, path, tiny" in problems(write_recipe, text)


def test_duplicate_target_names(write_recipe):
    msg = problems(write_recipe, smoke_text(**{'"x86-onnxruntime-fp32"': '"torch-fp32"'}))
    assert "duplicate target names: torch-fp32" in msg


def test_target_that_no_stage_produces(write_recipe):
    msg = problems(
        write_recipe,
        smoke_text(**{'runtime = "torch"\nprecision = "fp32"': 'runtime = "torch"\nprecision = "fp16"'}),
    )
    assert "targets[0].runtime" in msg and "torch/fp16" in msg and "torch/int8" in msg


def test_torch_int8_target_needs_its_table(write_recipe):
    msg = problems(
        write_recipe,
        smoke_text(**{'runtime = "torch"\nprecision = "fp32"': 'runtime = "torch"\nprecision = "int8"'}),
    )
    assert "targets[0].runtime" in msg and "add a [torch_int8] table" in msg


def test_int8_target_needs_quantize_table(write_recipe):
    msg = problems(write_recipe, smoke_text(**{'[quantize]\nmode = "dynamic"\n': ""}))
    assert "targets[2].runtime" in msg and "add a [quantize] table" in msg


def test_onnx_target_needs_export_table(write_recipe):
    msg = problems(write_recipe, smoke_text(**{"[export]\nopset = 18\n": ""}))
    assert "add an [export] table" in msg


def test_not_toml(write_recipe):
    assert "not valid TOML" in problems(write_recipe, "[model\n")


def test_missing_recipe_file(tmp_path):
    with pytest.raises(CompressError, match="recipe file not found"):
        load_recipe(tmp_path / "absent.toml")


def test_local_model_without_safetensors(write_recipe, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    text = smoke_text(**{"tiny = {": 'path = "ckpt"\n# tiny = {{'})
    msg = problems(write_recipe, text)
    assert "model.path" in msg and "no *.safetensors" in msg


def test_corrupt_safetensors_is_named(write_recipe, tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    save_file({"w": np.zeros((64, 64), dtype=np.float32)}, folder / "model.safetensors")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    tiny = next(line for line in smoke_text().splitlines() if line.startswith("tiny = "))
    msg = problems(write_recipe, smoke_text(**{tiny: 'path = "ckpt"'}))
    assert "model.path" in msg and "corrupt weights file" in msg and "model.safetensors" in msg


def with_prune(body: str) -> str:
    """The smoke recipe with its [prune] fractions replaced by `body`."""
    return smoke_text(**{"heads_fraction = 0.5\nffn_fraction = 0.5\n": f"{body}\n"})


@pytest.mark.parametrize(
    "body,needle",
    [
        ("", "removes nothing"),
        ("heads_fraction = 0.0\nffn_fraction = 0.0", "removes nothing"),
        ("heads_fraction = 0.9", "cannot keep min_heads_per_layer = 1 in every layer"),
        ("heads_fraction = 0.5\nmin_heads_per_layer = 0", "prune.min_heads_per_layer"),
        (
            "heads_fraction = 0.5\nper_layer = true\nmin_heads_per_layer = 2",
            "leaves fewer than min_heads_per_layer",
        ),
        ("heads_fraction = 0.1", "rounds to none"),
        ("heads_fraction = 1.0", "prune.heads_fraction"),
        ("ffn_fraction = 0.5\ntarget_macs_fraction = 0.5", "not both"),
    ],
)
def test_prune_plans_that_remove_nothing_or_empty_a_layer_are_refused(write_recipe, body, needle):
    # the smoke model has 2 layers x 2 heads
    assert needle in problems(write_recipe, with_prune(body))


def test_prune_plan_accepted(write_recipe):
    loaded = load_recipe(write_recipe(with_prune("heads_fraction = 0.5\nffn_fraction = 0.5")))
    assert loaded.recipe.prune.recovery is not None


def test_isa_only_on_int8_onnxruntime_targets(write_recipe):
    text = smoke_text(**{'name = "torch-fp32"': 'name = "torch-fp32"\nisa = "avx2"'})
    msg = problems(write_recipe, text)
    assert "targets[0].isa" in msg and "only to onnxruntime/int8 targets" in msg


@pytest.mark.parametrize(
    "line,needle",
    [
        ('check_shapes = ["1x16", "8by64"]', "quantize.check_shapes[1]"),
        ("max_trials = 0", "quantize.max_trials"),
        ("min_label_agreement = 1.5", "quantize.min_label_agreement"),
    ],
)
def test_bad_quantize_settings_are_named(write_recipe, line, needle):
    msg = problems(write_recipe, smoke_text(**{'mode = "dynamic"': f'mode = "dynamic"\n{line}'}))
    assert needle in msg


@pytest.mark.parametrize(
    "table,needle",
    [
        ('[regression]\nbaseline = "nowhere/manifest.json"', "regression.baseline (line"),
        ("[regression]\nmax_metric_drop = -1", "regression.max_metric_drop"),
        ("[regression]\nmax_size_increase = -0.1", "regression.max_size_increase"),
        ("[evaluation.release_matrix]\nbatches = []", "evaluation.release_matrix.batches"),
        ("[evaluation.release_matrix]\nsequences = [16, 1024]", "evaluation.release_matrix.sequences[1]"),
        (
            "[evaluation.release_matrix]\nmin_label_agreement = 2",
            "evaluation.release_matrix.min_label_agreement",
        ),
        (
            '[[targets]]\nname = "x"\nruntime = "torch"\nprecision = "fp32"\n'
            "max_accuracy_drop = 1\nperturb_weights = 0",
            "perturb_weights",
        ),
    ],
)
def test_regression_release_and_perturb_settings_are_checked(write_recipe, table, needle):
    assert needle in problems(write_recipe, smoke_text() + "\n" + table + "\n")


def test_regression_baseline_path_resolves_beside_the_recipe(write_recipe, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text("{}")
    loaded = load_recipe(write_recipe(smoke_text() + '\n[regression]\nbaseline = "old"\n'))
    assert loaded.recipe.regression.baseline == str((tmp_path / "old").resolve())
    latest = load_recipe(write_recipe(smoke_text() + "\n[regression]\n"))
    assert latest.recipe.regression.baseline == "latest" and latest.recipe.regression.max_metric_drop == 0.5


def test_recipe_hash_ignores_where_the_checkout_lies(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        link_data(folder)
        (folder / "r.toml").write_text(smoke_text())
    assert load_recipe(a / "r.toml").sha256() == load_recipe(b / "r.toml").sha256()


@pytest.mark.parametrize(
    "old,new,key",
    [
        ('"data/sst2/train.tsv"', '"/etc/passwd"', "data.train (line"),
        ('"data/sst2/dev.tsv"', '"../../dev.tsv"', "data.dev (line"),
        ("[model]\ntiny = {", '[model]\npath = "../ckpt"\n# tiny = {', "model.path (line"),
        ("[evaluation]", '[output]\ndir = "/tmp/elsewhere"\n\n[evaluation]', "output.dir (line"),
    ],
    ids=["absolute data", "dotdot data", "dotdot model", "absolute output"],
)
def test_paths_outside_the_recipe_folder_are_refused(write_recipe, old, new, key):
    msg = problems(write_recipe, smoke_text(**{old: new}))
    assert key in msg and "leads outside the recipe's folder" in msg and "--allow-outside" in msg


def test_allow_outside_lets_an_absolute_path_through(write_recipe, tmp_path):
    absolute = (tmp_path / "data" / "sst2" / "train.tsv").resolve()
    path = write_recipe(smoke_text(**{'"data/sst2/train.tsv"': f'"{absolute}"'}))
    with pytest.raises(CompressError, match="data.train"):
        load_recipe(path)
    assert load_recipe(path, allow_outside=True).recipe.data.train == absolute


def test_a_huge_recipe_is_refused_before_parsing(write_recipe):
    path = write_recipe(smoke_text() + "#" * (2 << 20))
    with pytest.raises(CompressError, match="a recipe may be at most 1,048,576"):
        load_recipe(path)


def test_a_huge_data_file_is_refused_naming_it(write_recipe, monkeypatch):
    from compress.data import splits as data

    monkeypatch.setattr(data, "MAX_FILE_BYTES", 1000)
    msg = problems(write_recipe, smoke_text())
    assert "train.tsv" in msg and "a data file may be at most 1,000" in msg


@pytest.mark.parametrize(
    "old,new,key,needle",
    [
        ("[prune.recovery]\n", "[prune.recovery]\nepochz = 3\n", "prune.recovery.epochz", "unknown key"),
        (
            "[prune.recovery]\n",
            '[prune.recovery]\nepochs = "two"\n',
            "prune.recovery.epochs",
            "valid integer",
        ),
        (
            "[quantize]\n",
            '[quantize]\ncheck_shapes = ["1x16", "big"]\n',
            "quantize.check_shapes[1]",
            "BATCHxSEQ",
        ),
    ],
)
def test_a_bad_key_in_a_dotted_table_is_named_at_its_own_line(write_recipe, old, new, key, needle):
    text = smoke_text(**{old: new})
    msg = problems(write_recipe, text)
    bad_line = new.splitlines()[1]
    line = text.splitlines().index(bad_line) + 1
    assert f"{key} (line {line})" in msg and needle in msg
