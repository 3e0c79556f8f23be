"""The default recipe (`make run`) end to end on the real data: minutes, so marked slow (`make test-slow`).
It is the whole pipeline: every stage, every kind of hardware target."""

import pytest

from tests.conftest import REPO, load_manifest, run_cli

DEFAULT = REPO / "recipes" / "sst2-minilm-edge.toml"


def test_make_run_runs_the_default_recipe():
    assert f"RECIPE ?= recipes/{DEFAULT.name}" in (REPO / "Makefile").read_text()


@pytest.mark.slow
def test_default_recipe_runs_every_stage_for_every_kind_of_target(tmp_path):
    result = run_cli("run", str(DEFAULT), "--out", str(tmp_path), timeout=1800)
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / DEFAULT.stem / "latest"
    manifest = load_manifest(bundle)
    assert [(s["name"], s["status"]) for s in manifest["stages"]] == [
        (name, "ok") for name in ("finetune", "prune", "export", "engine", "quantize")
    ]
    targets = {t["name"]: t for t in manifest["targets"]}
    assert manifest["verdict"] == "pass"
    # a TensorRT target without a GPU is judged on its CPU proxy and says so
    assert all(t["verdict"] == ("proxy" if t["runtime"] == "tensorrt" else "pass") for t in targets.values())
    fine_tuned = manifest["targets"][0]["baseline"]
    assert fine_tuned >= 0.88
    int8 = [t for t in targets.values() if (t["runtime"], t["precision"]) == ("onnxruntime", "int8")]
    assert len({t["artifact"] for t in int8}) >= 2  # one build per ISA
    assert max(t["accuracy"] for t in int8) >= fine_tuned - 0.015
    assert {t["runtime"] for t in targets.values()} >= {"torch", "onnxruntime", "tensorrt"}
    assert (bundle / "pareto.png").stat().st_size > 10_000
    assert run_cli("verify", str(bundle)).returncode == 0
