import pytest

from compress.core.errors import CompressError
from compress.pipeline.runner import select_stages
from tests.conftest import link_data, load_manifest, run_cli, smoke_text

STAGES = ["finetune", "export"]


@pytest.mark.parametrize(
    "only,start,expected",
    [
        (None, None, {"finetune", "export"}),
        ("export", None, {"export"}),
        (None, "finetune", {"finetune", "export"}),
    ],
)
def test_select_stages(only, start, expected):
    assert select_stages(STAGES, only, start) == expected


def test_select_unknown_stage():
    with pytest.raises(CompressError, match="--from prune: not a stage of this recipe"):
        select_stages(STAGES, None, "prune")


def test_packaged_minilm_small_run(tmp_path):
    """The default recipes' real model and every stage on a few dozen rows: loads, trains, prunes,
    exports, gates."""
    tiny = next(line for line in smoke_text().splitlines() if line.startswith("tiny = "))
    text = smoke_text(
        **{
            tiny: 'packaged = "all-MiniLM-L6-v2"',
            "train_rows = 2000": "train_rows = 64",
            "epochs = 3": "epochs = 1",
            "dev_rows = 100": "dev_rows = 32",
            "test_rows = 200": "test_rows = 64",
            "learning_rate = 2e-3": "learning_rate = 1e-4",
            # the release matrix at a few shapes: the full one costs a minute on the real model
            "latency_repeats = 5": "latency_repeats = 5\n\n[evaluation.release_matrix]\n"
            "batches = [1, 8]\nsequences = [16, 64]\nrows = 16\nmin_label_agreement = 0.5",
            "max_accuracy_drop = 10.0": "max_accuracy_drop = 100.0",
            "max_size_mb = 50": "max_size_mb = 200",
            # an undertrained model's logits sit near the boundary: INT8 flips some of them
            'mode = "dynamic"': 'mode = "dynamic"\nmin_label_agreement = 0.5\ncheck_rows = 64',
        }
    )
    link_data(tmp_path)
    recipe = tmp_path / "minilm.toml"
    recipe.write_text(text)
    result = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(tmp_path / "out" / "minilm" / "latest")
    onnx_target = manifest["targets"][1]
    assert 65 < onnx_target["size_mb"] < 75  # MiniLM-L6 with half its heads and FFN: 17.4M fp32 parameters
    prune = manifest["stages"][1]["metrics"]
    assert sum(prune["after"]["heads"]) == 36 and prune["after"]["ffn"] == [768] * 6
    assert manifest["stages"][2]["metrics"]["parity"]["label_agreement"] == 1.0
