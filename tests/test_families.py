"""Every encoder family, as a user's checkpoint (`[model] path`), through every stage it can take:
fine-tune -> prune (where pruning knows the family) -> export -> INT8, exit 0; a family pruning does
not know is refused by `compress validate` in one line."""

import json

import pytest

from compress.models.architectures import FAMILIES
from tests.conftest import link_data, load_manifest, run_cli
from tests.families import save_tiny_checkpoint, tiny_configs

CONFIGS = tiny_configs()
RECIPE = """
[model]
path = "{family}"

[data]
train = "data/sst2/train.tsv"
dev = "data/sst2/dev.tsv"
test = "data/sst2/test.tsv"
max_length = 40          # longer than ModernBERT's 16-token local window in tests/families.py
train_rows = 128
dev_rows = 64
test_rows = 64

[finetune]
epochs = 1
batch_size = 32
learning_rate = 1e-3
evals_per_epoch = 1
amp = "off"

{prune}
[export]
parity_rows = 48         # three padded batches of mixed lengths

[quantize]
check_shapes = ["1x16", "4x40"]
max_trials = 2

[evaluation]
latency_warmup = 1
latency_repeats = 2

[evaluation.release_matrix]
enabled = false

[[targets]]
name = "onnx-fp32"
runtime = "onnxruntime"
precision = "fp32"
max_accuracy_drop = 100

[[targets]]
name = "onnx-int8"
runtime = "onnxruntime"
precision = "int8"
max_accuracy_drop = 100
"""
PRUNE = """[prune]
heads_fraction = 0.5
ffn_fraction = 0.5
importance_rows = 32

[prune.recovery]
epochs = 1
train_rows = 64
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("families")
    link_data(path)
    return path


def run_here(recipe, out) -> str:
    """The run's verdict, in this process: what `compress run` does less the interpreter start-up
    (a few seconds a family; the CLI's exit codes are tested once, for MobileBERT)."""
    from compress.core.progress import Reporter
    from compress.pipeline import runner
    from compress.recipe.load import load_recipe

    return runner.run(load_recipe(recipe), out_root=out, reporter=Reporter(quiet=True)).verdict


def stage(manifest: dict, name: str) -> dict:
    return next(s for s in manifest["stages"] if s["name"] == name)


def test_every_family_in_the_pruning_table_has_a_tiny_checkpoint():
    """A family added to the adapter table without a row here fails this test."""
    assert set(FAMILIES) <= {c.model_type for c in CONFIGS.values()}


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_family_runs_every_stage(folder, family):
    save_tiny_checkpoint(family, folder / family)
    prunable = CONFIGS[family].model_type in FAMILIES
    recipe = folder / f"{family}.toml"
    recipe.write_text(RECIPE.format(family=family, prune=PRUNE if prunable else ""))
    assert run_here(recipe, folder / "out") == "pass"
    manifest = load_manifest(folder / "out" / family / "latest")
    expected = ["finetune", "prune", "export", "quantize"] if prunable else ["finetune", "export", "quantize"]
    assert [s["name"] for s in manifest["stages"]] == expected
    assert all(s["status"] == "ok" for s in manifest["stages"]), manifest["stages"]
    export = stage(manifest, "export")["metrics"]
    assert export["parity"]["max_abs_logit_diff"] <= 1e-3
    if prunable:
        prune = stage(manifest, "prune")["metrics"]
        assert abs(prune["encoder_macs_reduction"] - 0.5) <= 0.05, prune["encoder_macs_reduction"]
        assert prune["reload_max_abs_logit_diff"] <= 1e-4
    onnx = json.loads(
        (folder / "out" / family / "latest" / "targets" / "onnx-fp32" / "config.json").read_text()
    )
    assert onnx["model_type"] == CONFIGS[family].model_type


def save_mobilebert(folder):
    """A family with no pruning adapter (MobileBERT's bottlenecked layers), as a user's checkpoint."""
    import torch
    import transformers

    from compress.models.packaged import packaged_model_dir

    config = transformers.MobileBertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        embedding_size=16,
        intra_bottleneck_size=16,
        true_hidden_size=16,
        num_feedforward_networks=1,
        pad_token_id=0,
        num_labels=2,
    )
    torch.manual_seed(0)
    transformers.AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(packaged_model_dir("all-MiniLM-L6-v2")).save_pretrained(folder)


def test_a_family_without_an_adapter_runs_every_other_stage_and_pruning_is_one_line(folder):
    save_mobilebert(folder / "mobilebert")
    pruned = folder / "mobilebert-pruned.toml"
    pruned.write_text(RECIPE.format(family="mobilebert", prune=PRUNE))
    result = run_cli("validate", str(pruned))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "'mobilebert' family" in result.stderr and "supported: albert, bert" in result.stderr
    plain = folder / "mobilebert.toml"
    plain.write_text(RECIPE.format(family="mobilebert", prune=""))
    result = run_cli("run", str(plain), "--out", str(folder / "out"), "-q")
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("family", ["distilbert"])
def test_sentence_pairs_run_every_stage(folder, family):
    """A pair task (the shipped sst2-pairs data) through fine-tune, prune, export and INT8."""
    save_tiny_checkpoint(family, folder / family)
    recipe = folder / f"pairs-{family}.toml"
    text = RECIPE.format(family=family, prune=PRUNE).replace(
        'test = "data/sst2/test.tsv"',
        'test = "data/sst2-pairs/test.tsv"\ntext_column = "review"\ntext_pair_column = "claim"',
    )
    recipe.write_text(text.replace("data/sst2/", "data/sst2-pairs/"))
    assert run_here(recipe, folder / "out") == "pass"
    manifest = load_manifest(folder / "out" / f"pairs-{family}" / "latest")
    assert manifest["data"]["spec"]["text_pair_column"] == "claim"
    assert all(s["status"] == "ok" for s in manifest["stages"])
