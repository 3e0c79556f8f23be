"""The CLI as a user (and CI) runs it: real subprocesses, real exit codes, one shared cache."""

import hashlib
import json
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import load_manifest, run_cli, smoke_text


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def recipes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipes")

    def write(name: str, **replace: str):
        path = folder / f"{name}.toml"
        path.write_text(smoke_text(**replace))
        return path

    return write


@pytest.fixture(scope="module")
def first_run(out, recipes):
    recipe = recipes("smoke")
    result = run_cli("run", str(recipe), "--out", str(out))
    return recipe, result


def run_variant(recipes, out, name: str, **replace: str):
    """Run the smoke recipe with `old=new` substitutions; the CLI's result and the bundle's manifest."""
    result = run_cli("run", str(recipes(name, **replace)), "--out", str(out))
    return result, out / name / "latest", load_manifest(out / name / "latest")


def stage_of(manifest: dict, name: str) -> dict:
    return next(s for s in manifest["stages"] if s["name"] == name)


def test_smoke_run_passes_and_every_file_hash_matches(first_run, out):
    _, result = first_run
    assert result.returncode == 0, result.stderr
    bundle = out / "smoke" / "latest"
    manifest = load_manifest(bundle)
    assert manifest["verdict"] == "pass"
    assert {t["name"]: t["verdict"] for t in manifest["targets"]} == {
        "torch-fp32": "pass",
        "x86-onnxruntime-fp32": "pass",
        "x86-onnxruntime-int8": "pass",
    }
    listed = {f["path"] for f in manifest["files"]}
    on_disk = {p.relative_to(bundle.resolve()).as_posix() for p in bundle.resolve().rglob("*") if p.is_file()}
    assert listed == on_disk - {"manifest.json"}
    for f in manifest["files"]:
        data = (bundle / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    assert (bundle / "targets/x86-onnxruntime-fp32/model.onnx").is_file()
    assert (bundle / "targets/torch-fp32/model.safetensors").is_file()
    for key in ("python", "torch", "transformers", "onnx", "onnxruntime", "cpu"):
        assert key in manifest["environment"]
    assert manifest["stages"][2]["metrics"]["parity"]["max_abs_logit_diff"] < 1e-3


def test_int8_answers_like_fp32_at_every_checked_shape(first_run, out):
    quantize = stage_of(load_manifest(out / "smoke" / "latest"), "quantize")
    (build,) = quantize["metrics"]["builds"].values()
    matrix = build["shape_matrix"]
    assert set(matrix) == {"1x16", "1x128", "8x64", "32x256"}
    for r in matrix.values():
        assert r["error"] is None and r["label_agreement"] >= 0.99 and r["rows"] >= 32


def test_quantize_budget_no_trial_can_meet_exits_1_with_best_effort_artifact(first_run, out, recipes):
    budget = 'mode = "dynamic"\nmax_accuracy_drop = -5.0\nmax_trials = 3'
    result, bundle, manifest = run_variant(recipes, out, "int8-impossible", **{'mode = "dynamic"': budget})
    assert result.returncode == 1, result.stderr
    quantize = stage_of(manifest, "quantize")
    assert quantize["status"] == "failed"
    assert "no trial met quantize.max_accuracy_drop -5.00" in quantize["reason"]
    (build,) = quantize["metrics"]["builds"].values()
    trials = build["fallback"]["trials"]
    assert [len(t["fp32_layers"]) for t in trials] == [0, 1, 2]
    assert not any(t["passed"] for t in trials)
    # the most sensitive layer comes first and is named in each later trial
    assert trials[2]["fp32_layers"][0] == trials[1]["fp32_layers"][0]
    int8 = next(t for t in manifest["targets"] if t["name"] == "x86-onnxruntime-int8")
    assert int8["verdict"] == "fail" and (bundle / int8["artifact"] / "model.onnx").is_file()
    assert any(g["gate"] == "stage" and "best-effort" in g["message"] for g in int8["gates"])
    failures = [f.get("message") for f in ET.parse(bundle / "junit.xml").getroot().iter("failure")]
    assert any("no trial met" in m for m in failures)


def test_each_named_isa_gets_its_own_int8_build_and_target(first_run, out, recipes):
    avx2 = (
        '[[targets]]\nname = "avx2-onnxruntime-int8"\nruntime = "onnxruntime"\nprecision = "int8"\n'
        'isa = "avx2"\nmax_accuracy_drop = 5.0\n\n[[targets]]\nname = "x86-onnxruntime-int8"\n'
        'isa = "avx512_vnni"'
    )
    replace = {'[[targets]]\nname = "x86-onnxruntime-int8"': avx2}
    result, bundle, manifest = run_variant(recipes, out, "two-isas", **replace)
    assert result.returncode == 0, result.stderr
    quantize = stage_of(manifest, "quantize")
    assert quantize["metrics"]["builds"]["avx2"]["targets"] == ["avx2-onnxruntime-int8"]
    for name, reduce_range in (("avx2-onnxruntime-int8", True), ("x86-onnxruntime-int8", False)):
        made = json.loads((bundle / "targets" / name / "quantization.json").read_text())
        assert made["reduce_range"] is reduce_range  # 7-bit weights only where u8 x s8 can saturate
    # two different graphs went to the two targets
    shas = {
        f["path"].split("/")[1]: f["sha256"] for f in manifest["files"] if f["path"].endswith("model.onnx")
    }
    assert shas["avx2-onnxruntime-int8"] != shas["x86-onnxruntime-int8"]


def test_second_run_reuses_every_stage(first_run, out):
    recipe, _ = first_run
    result = run_cli("run", str(recipe), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("reused from cache") == 4
    manifest = load_manifest(out / "smoke" / "latest")
    assert all(s["cached"] for s in manifest["stages"])


def test_unreachable_budget_exits_1_with_junit_failure(first_run, out, recipes):
    recipe = recipes("unreachable", **{"max_accuracy_drop = 5.0": "max_accuracy_drop = -1.0"})
    result = run_cli("run", str(recipe), "--out", str(out))
    assert result.returncode == 1, result.stderr
    bundle = out / "unreachable" / "latest"
    assert load_manifest(bundle)["verdict"] == "fail"
    failures = ET.parse(bundle / "junit.xml").getroot().iter("failure")
    assert any("exceeds budget -1.00 pt" in f.get("message") for f in failures)
    assert "FAIL" in (bundle / "report.md").read_text().splitlines()[0]


def test_parity_breach_fails_the_stage_and_still_writes_a_bundle(first_run, out, recipes):
    recipe = recipes("parity", **{"opset = 18": "opset = 18\nmax_abs_logit_diff = 1e-12"})
    result = run_cli("run", str(recipe), "--out", str(out))
    assert result.returncode == 1, result.stderr
    manifest = load_manifest(out / "parity" / "latest")
    export = manifest["stages"][2]
    assert export["status"] == "failed" and "max |Δlogit|" in export["reason"]
    onnx_target = manifest["targets"][1]
    assert onnx_target["verdict"] == "fail" and "not built" in onnx_target["gates"][0]["message"]


@pytest.mark.parametrize(
    "replace,needle",
    [
        ({"max_length = 64": "max_length = 64\nshuffle = true"}, "data.shuffle (line"),
        ({"batch_size = 32": 'batch_size = "32"'}, "finetune.batch_size"),
        ({"train.tsv": "missing.tsv"}, "data.train"),
        ({'label_column = "label"': 'label_column = "y"'}, "data.label_column"),
    ],
    ids=["unknown key", "wrong type", "missing data file", "missing label column"],
)
def test_malformed_recipe_exits_2_without_traceback(recipes, out, replace, needle):
    recipe = recipes("bad", **replace)
    result = run_cli("run", str(recipe), "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and needle in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "bad").exists()


def test_validate_command(recipes):
    ok = run_cli("validate", str(recipes("smoke")))
    assert ok.returncode == 0 and "stages finetune, prune, export, quantize" in ok.stdout
    bad = run_cli("validate", str(recipes("bad", **{"opset = 18": "opset = 5"})))
    assert bad.returncode == 2 and "export.opset" in bad.stderr


def test_only_needs_cached_upstream(first_run, out, recipes, tmp_path):
    recipe, _ = first_run
    again = run_cli("run", str(recipe), "--out", str(out), "--only", "export")
    assert again.returncode == 0, again.stderr
    stages = {s["name"]: s for s in load_manifest(out / "smoke" / "latest")["stages"]}
    assert stages["finetune"]["cached"] and not stages["export"]["cached"]
    cold = run_cli("run", str(recipe), "--out", str(tmp_path), "--only", "export")
    assert cold.returncode == 2 and "no cached output" in cold.stderr
    unknown = run_cli("run", str(recipe), "--out", str(out), "--only", "engine")
    assert unknown.returncode == 2 and "not a stage of this recipe" in unknown.stderr


def test_smoke_prunes_and_the_bundle_checkpoint_reloads_with_plain_transformers(first_run, out):
    import torch
    from transformers import AutoModelForSequenceClassification

    from compress.modeling import load_classifier

    manifest = load_manifest(out / "smoke" / "latest")
    prune = next(s for s in manifest["stages"] if s["name"] == "prune")
    assert prune["status"] == "ok"
    assert prune["metrics"]["after"]["heads"] == [1, 1] and prune["metrics"]["after"]["ffn"] == [32, 32]
    assert prune["metrics"]["encoder_macs_reduction"] >= 0.45
    folder = out / "smoke" / "latest" / "targets" / "torch-fp32"
    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    ours = load_classifier(folder)
    ids = torch.randint(1000, 2000, (4, 16))
    with torch.inference_mode():
        diff = (plain(input_ids=ids).logits - ours(input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-4


def test_prune_stage_budget_breach_fails_the_run(first_run, out, recipes):
    recipe = recipes(
        "prune-budget", **{"importance_rows = 64": "importance_rows = 64\nmax_accuracy_drop = -5.0"}
    )
    result = run_cli("run", str(recipe), "--out", str(out))
    assert result.returncode == 1, result.stderr
    stages = {s["name"]: s for s in load_manifest(out / "prune-budget" / "latest")["stages"]}
    assert stages["prune"]["status"] == "failed" and "exceeds budget -5.00 pt" in stages["prune"]["reason"]
    assert stages["export"]["status"] == "not run"


@pytest.mark.parametrize("decision,code", [("point", 0), ("upper", 1)])
def test_decision_policy_end_to_end(first_run, out, recipes, decision, code):
    """A pinned baseline 1 point above the tiny model: under a 2-point budget, but the interval from
    200 rows is several points wide, so "point" passes with a noise warning and "upper" fails."""
    recipe = recipes(
        f"policy-{decision}",
        **{
            "[evaluation]\n": "[evaluation]\nbaseline = 0.55\n",
            "max_accuracy_drop = 5.0": f'max_accuracy_drop = 2.0\ndecision = "{decision}"',
        },
    )
    result = run_cli("run", str(recipe), "--out", str(out))
    assert result.returncode == code, result.stderr
    bundle = out / f"policy-{decision}" / "latest"
    report = (bundle / "report.md").read_text()
    assert "within the noise of this evaluation set" in report
    if decision == "upper":
        failures = [f.get("message") for f in ET.parse(bundle / "junit.xml").getroot().iter("failure")]
        assert failures and all("(decision = upper)" in m for m in failures)
