"""The default recipe end to end on the real data: minutes, so marked slow (`make test-slow`)."""

import pytest

from tests.conftest import REPO, load_manifest, run_cli


@pytest.mark.slow
def test_default_recipe_reaches_its_accuracy(tmp_path):
    result = run_cli("run", str(REPO / "recipes" / "sst2-minilm.toml"), "--out", str(tmp_path), timeout=1800)
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(tmp_path / "sst2-minilm" / "latest")
    accuracy = {t["name"]: t["accuracy"] for t in manifest["targets"]}
    assert accuracy["x86-onnxruntime-fp32"] >= 0.88, accuracy
    assert manifest["targets"][0]["baseline"] >= 0.88
    bundle = tmp_path / "sst2-minilm" / "latest"
    assert (bundle / "pareto.png").stat().st_size > 10_000
    report = (bundle / "report.md").read_text()
    assert "## Release matrix" in report and "**export: onnxruntime/fp32 — every shape passes**" in report
    assert run_cli("verify", str(bundle)).returncode == 0
