"""What the README promises of `compress` as a command, each checked so that breaking it fails here:
--from, --no-cache, --reproduce into a warm cache, a changed data file, a regression alone failing
the run, compare's tolerance flags, the last stdout line, macro-F1 end to end, label names in every
target's config.json, and `compress engine` where no engine can be built."""

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from compress.runtimes import tensorrt_engine
from tests.conftest import DATA, REPO, fast_recipe, link_data, load_manifest, run_cli, run_variant

SMOKE_STAGES = ["finetune", "prune", "export", "quantize"]


def rebuilt(stderr: str) -> list[str]:
    return [name for name in SMOKE_STAGES if f"▶ {name}" in stderr]


def reused(stderr: str) -> list[str]:
    return [name for name in SMOKE_STAGES if f"✓ {name}: reused from cache" in stderr]


def test_the_last_stdout_line_is_the_verdict(first_run, out, recipes):
    _, result = first_run
    last = result.stdout.splitlines()[-1]
    assert last.startswith("PASS: ") and last.endswith("/report.md")
    report = Path(last.removeprefix("PASS: "))
    assert report.is_file() and report.parent.parent == out / "smoke"
    breach = {"max_accuracy_drop = 10.0": "max_accuracy_drop = -5.0"}
    failed = run_cli("run", str(recipes("fails", **breach)), "--out", str(out))
    last = failed.stdout.splitlines()[-1]
    assert (
        failed.returncode == 1 and last.startswith("FAIL: ") and Path(last.removeprefix("FAIL: ")).is_file()
    )


def test_from_rebuilds_that_stage_and_the_later_ones(first_run, out, recipes):
    result = run_cli("run", str(recipes("smoke")), "--out", str(out), "--from", "export")
    assert result.returncode == 0, result.stderr
    assert reused(result.stderr) == ["finetune", "prune"] and rebuilt(result.stderr) == ["export", "quantize"]
    cached = {s["name"]: s["cached"] for s in load_manifest(out / "smoke" / "latest")["stages"]}
    assert cached == {"finetune": True, "prune": True, "export": False, "quantize": False}


def test_no_cache_rebuilds_every_stage(tmp_path):
    link_data(tmp_path)
    recipe = fast_recipe(tmp_path)
    assert run_cli("run", str(recipe), "--out", str(tmp_path / "out")).returncode == 0
    result = run_cli("run", str(recipe), "--out", str(tmp_path / "out"), "--no-cache")
    assert result.returncode == 0, result.stderr
    assert reused(result.stderr) == [] and rebuilt(result.stderr) == SMOKE_STAGES
    assert not any(s["cached"] for s in load_manifest(tmp_path / "out" / "fast" / "latest")["stages"])


def test_a_changed_data_file_rebuilds_every_stage(tmp_path):
    data = tmp_path / "data" / "sst2"
    shutil.copytree(DATA, data)
    recipe = fast_recipe(tmp_path)
    first = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert first.returncode == 0, first.stderr
    with open(data / "dev.tsv", "a") as f:  # dev picks checkpoints and calibrates: every stage reads it
        f.write("one more dev row\t1\n")
    changed = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert changed.returncode == 0, changed.stderr
    assert reused(changed.stderr) == [] and rebuilt(changed.stderr) == SMOKE_STAGES


def test_a_regression_alone_fails_the_run(first_run, out, recipes):
    """Every target within its own budgets, every stage ok: only the comparison with the previous
    run is breached (the torch target lost half a point against a tolerance of zero)."""
    regression = {
        "[evaluation]\n": '[regression]\nbaseline = "latest"\nmax_metric_drop = 0.0\n\n[evaluation]\n'
    }
    first, _, _ = run_variant(recipes, out, "regress-alone", **regression)
    assert first.returncode == 0, first.stderr
    noisy = {'name = "torch-fp32"': 'name = "torch-fp32"\nperturb_weights = 0.1'}
    again, bundle, manifest = run_variant(recipes, out, "regress-alone", **regression, **noisy)
    assert again.returncode == 1, again.stderr
    failing = [(t["name"], g["gate"]) for t in manifest["targets"] for g in t["gates"] if not g["passed"]]
    assert failing == [("torch-fp32", "regression")]
    assert all(s["status"] == "ok" for s in manifest["stages"]) and manifest["verdict"] == "fail"
    junit = [
        c.get("classname")
        for c in ET.parse(bundle / "junit.xml").getroot().iter("testcase")
        if c.find("failure") is not None
    ]
    assert junit == ["target.torch-fp32"]


def test_compare_tolerance_flags_decide_the_exit_code(first_run, out, recipes):
    noisy = {'name = "torch-fp32"': 'name = "torch-fp32"\nperturb_weights = 0.1'}
    result, bundle, _ = run_variant(recipes, out, "noisy-torch", **noisy)
    assert result.returncode == 0, result.stderr
    base = str(out / "smoke" / "latest")
    assert run_cli("compare", base, str(bundle)).returncode == 0  # half a point within 0.5
    strict = run_cli("compare", base, str(bundle), "--max-metric-drop", "0.1")
    assert strict.returncode == 1 and "exceeds max_metric_drop 0.10 pt" in strict.stdout
    size = run_cli("compare", base, str(bundle), "--max-metric-drop", "1", "--max-size-increase", "0")
    assert size.returncode == 0  # same sizes: a zero size tolerance holds
    latency = json.loads(
        run_cli("compare", base, str(bundle), "--max-latency-increase", "1000", "--format", "json").stdout
    )
    assert latency["tolerances"]["max_latency_increase"] == 1000.0
    assert any(g["message"].startswith("latency 1x128") for r in latency["targets"] for g in r["gates"])


def test_macro_f1_is_the_gated_metric_end_to_end(first_run, out, recipes):
    result, bundle, manifest = run_variant(
        recipes, out, "macro-f1", **{"latency_repeats = 5": 'latency_repeats = 5\nmetric = "macro_f1"'}
    )
    assert result.returncode == 0, result.stderr
    for t in manifest["targets"]:
        assert t["metric_name"] == "macro_f1" and t["metric"] == t["macro_f1"] != t["accuracy"]
        accuracy_gate = t["gates"][0]
        assert accuracy_gate["message"].startswith(f"macro_f1 {t['macro_f1']:.4f} vs baseline")
        assert accuracy_gate["value"] == pytest.approx(t["drop"])  # the drop judged is macro-F1's
    assert "macro_f1" in (bundle / "report.md").read_text()


def test_label_names_reach_every_target_config(tmp_path):
    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        rows = (DATA / f"{split}.tsv").read_text().splitlines()
        named = [rows[0]] + [
            f"{text}\t{['negative', 'positive'][int(y)]}" for text, y in (r.rsplit("\t", 1) for r in rows[1:])
        ]
        (data / f"{split}.tsv").write_text("\n".join(named) + "\n")
    recipe = tmp_path / "named.toml"
    text = (REPO / "recipes" / "smoke.toml").read_text()
    recipe.write_text(
        text.replace("max_length = 64", 'max_length = 64\nlabel_names = ["negative", "positive"]')
    )
    result = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    targets = tmp_path / "out" / "named" / "latest" / "targets"
    for name in ("torch-fp32", "x86-onnxruntime-fp32", "x86-onnxruntime-int8"):
        config = json.loads((targets / name / "config.json").read_text())
        assert config["id2label"] == {"0": "negative", "1": "positive"}
        assert config["label2id"] == {"negative": 0, "positive": 1}


@pytest.mark.skipif(tensorrt_engine.unavailable() is None, reason="an engine can be built here")
def test_compress_engine_where_none_can_be_built(first_run, out, recipes, tmp_path):
    not_a_target = run_cli("engine", str(out / "smoke" / "latest" / "targets" / "x86-onnxruntime-fp32"))
    assert not_a_target.returncode == 2 and "not a tensorrt target folder" in not_a_target.stderr
    engine = (
        '\n[engine]\n\n[[targets]]\nname = "gpu-fp16"\nruntime = "tensorrt"\nprecision = "fp16"\n'
        "max_accuracy_drop = 10.0\nallow_proxy = true\n"
    )
    result, bundle, _ = run_variant(
        recipes, out, "trt-cli", **{"[evaluation]\n": engine + "\n[evaluation]\n"}
    )
    assert result.returncode == 0, result.stderr
    here = run_cli("engine", str(bundle / "targets" / "gpu-fp16"), "--engine", str(tmp_path / "e.engine"))
    assert here.returncode == 1 and here.stderr.startswith(
        f"FAIL: not-built: {tensorrt_engine.unavailable()}"
    )
    assert not (tmp_path / "e.engine").exists()
