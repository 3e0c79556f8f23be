import pytest

from compress import bundle
from compress.errors import CompressError
from compress.recipe import load_recipe
from compress.stages import Artifact
from tests.conftest import smoke_text

ENV = {
    "versions": {"torch": "t", "transformers": "t", "onnx": "o", "onnxruntime": "o"},
    "cpu": {"model": "m", "isa": []},
}


def target(path=None) -> dict:
    """A passing torch target; with `path`, its model folder goes into the bundle."""
    entry = {
        "name": "t",
        "runtime": "torch",
        "precision": "fp32",
        "required": True,
        "metric_name": "accuracy",
        "baseline": 0.5,
        "baseline_from": "x",
        "metric": 0.5,
        "drop": 0.0,
        "size_mb": 1.0,
        "latency": None,
        "verdict": "pass",
        "gates": [],
        "budgets": {
            "max_accuracy_drop": 0,
            "max_latency_ms": None,
            "max_size_mb": None,
            "latency_shape": "1x128",
        },
    }
    if path is not None:
        entry["source_artifact"] = Artifact("checkpoint", "torch", "fp32", path)
    return entry


def test_failed_write_leaves_previous_bundle_and_latest(tmp_path, write_recipe):
    loaded = load_recipe(write_recipe(smoke_text()))
    stages = [{"name": "finetune", "status": "ok", "cached": False, "seconds": 1.0}]
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.safetensors").write_bytes(b"w")
    common = dict(
        loaded=loaded,
        out_root=tmp_path / "out",
        stages=stages,
        env=ENV,
        data_id={},
        verdict="pass",
        seconds=1.0,
    )
    good = bundle.write(targets=[target(model)], **common)
    with pytest.raises(CompressError, match="nothing was replaced, the previous bundle .* is intact"):
        bundle.write(targets=[target(tmp_path / "vanished")], **common)
    parent = tmp_path / "out" / "recipe"
    assert sorted(p.name for p in parent.iterdir()) == sorted([good.name, "latest"])
    assert (parent / "latest").resolve() == good.resolve()


def test_disk_full_while_writing_keeps_the_previous_bundle_and_says_so(tmp_path, write_recipe, monkeypatch):
    import errno

    from compress import plots

    loaded = load_recipe(write_recipe(smoke_text()))
    point = {
        "label": "a",
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "latency": {"1x128": {"median_ms": 1.0}},
        "size_mb": 1.0,
    }
    common = dict(
        loaded=loaded, out_root=tmp_path / "out", stages=[], env=ENV, data_id={}, verdict="pass", seconds=1.0
    )
    good = bundle.write(targets=[target()], artifacts=[point], **common)

    def full(path, *args):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(bundle, "write_pareto", full)
    with pytest.raises(CompressError) as info:
        bundle.write(targets=[target()], artifacts=[point], **common)
    assert "No space left on device" in str(
        info.value
    ) and f"the previous bundle {good.resolve()} is intact" in str(info.value)
    parent = tmp_path / "out" / "recipe"
    assert sorted(p.name for p in parent.iterdir()) == sorted([good.name, "latest"])
    assert (parent / "latest").resolve() == good.resolve()
    assert plots.write_pareto is not full
