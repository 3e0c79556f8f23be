"""The CLI as a user (and CI) runs it: real subprocesses, real exit codes, one shared cache."""

import hashlib
import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO, fast_recipe, link_data, load_manifest, run_cli, run_variant, stage_of


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
        'isa = "avx2"\nmax_accuracy_drop = 10.0\n\n[[targets]]\nname = "x86-onnxruntime-int8"\n'
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
    recipe = recipes("unreachable", **{"max_accuracy_drop = 10.0": "max_accuracy_drop = -5.0"})
    result = run_cli("run", str(recipe), "--out", str(out))
    assert result.returncode == 1, result.stderr
    bundle = out / "unreachable" / "latest"
    assert load_manifest(bundle)["verdict"] == "fail"
    failures = ET.parse(bundle / "junit.xml").getroot().iter("failure")
    assert any("exceeds budget -5.00 pt" in f.get("message") for f in failures)
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

    from compress.models.loading import load_classifier

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


@pytest.mark.parametrize("on_inconclusive,code", [("fail", 1), ("pass", 0)])
def test_an_inconclusive_gate_follows_on_inconclusive_end_to_end(
    first_run, out, recipes, on_inconclusive, code
):
    """A pinned baseline 1 point above the tiny model: the interval from 200 unpaired rows is several
    points wide around a 2-point budget, so the accuracy gates cannot tell."""
    recipe = recipes(
        f"unsure-{on_inconclusive}",
        **{
            "[evaluation]\n": f'[evaluation]\nbaseline = 0.70\non_inconclusive = "{on_inconclusive}"\n',
            "max_accuracy_drop = 10.0": "max_accuracy_drop = 2.0",
        },
    )
    result = run_cli("run", str(recipe), "--out", str(out))
    assert result.returncode == code, result.stderr
    bundle = out / f"unsure-{on_inconclusive}" / "latest"
    manifest = load_manifest(bundle)
    accuracy = [g for g in manifest["targets"][0]["gates"] if g["gate"] == "accuracy"][0]
    assert accuracy["outcome"] == "inconclusive" and manifest["targets"][0]["verdict"] == "inconclusive"
    report = (bundle / "report.md").read_text()
    assert "INCONCLUSIVE against budget 2.00 pt" in report and "inconclusive (the rows cannot tell)" in report
    junit = ET.parse(bundle / "junit.xml").getroot()
    failures = [f.get("message") for f in junit.iter("failure")]
    if on_inconclusive == "fail":
        assert failures and all("INCONCLUSIVE" in m for m in failures)
    else:
        assert not failures and any("INCONCLUSIVE" in (o.text or "") for o in junit.iter("system-out"))


def test_an_inconclusive_gate_draws_on_the_pool(first_run, out, recipes):
    """The same undecidable gate with [evaluation.pool] (the train rows the recipe did not sample):
    the candidates and the reference answer pool rows, the gate draws them chunk by chunk, and the
    report says how many."""
    pool = "[evaluation.pool]\nunused_train = true\nmax_rows = 3000\nchunk = 600\n\n[evaluation]\n"
    recipe = recipes(
        "pooled",
        **{
            "[evaluation]\n": pool + "baseline = 0.70\n",
            "max_accuracy_drop = 10.0": "max_accuracy_drop = 2.0",
        },
    )
    result = run_cli("run", str(recipe), "--out", str(out))
    assert "drawing on the pool" in result.stderr, result.stderr
    manifest = load_manifest(out / "pooled" / "latest")
    statistics = manifest["targets"][0]["statistics"]
    assert statistics["pool_rows"] > 0 and statistics["looks"] >= 2
    assert statistics["confidence"] == pytest.approx(1 - 0.05 / 6)  # 1 + 3000 / 600 looks
    assert "pool rows drawn over" in (out / "pooled" / "latest" / "report.md").read_text()


def test_decision_is_refused_with_what_replaced_it(recipes, out):
    recipe = recipes(
        "old-decision", **{"max_accuracy_drop = 10.0": 'max_accuracy_drop = 10.0\ndecision = "upper"'}
    )
    result = run_cli("validate", str(recipe))
    assert (
        result.returncode == 2
        and "decision was replaced" in result.stderr
        and "on_inconclusive" in result.stderr
    )


# --- #7: regression across runs, report, verify, reproduce, release matrix ---------------------------

PERTURB_INT8 = {'name = "x86-onnxruntime-int8"': 'name = "x86-onnxruntime-int8"\nperturb_weights = 2.0'}


def test_the_shipped_perturbed_recipe_exits_0_and_compare_names_its_regression(first_run, out, tmp_path):
    """recipes/smoke-perturbed.toml as shipped: every recipe in recipes/ passes out of the box; this one
    shows `compress compare` catching its optional, perturbed target."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    link_data(folder)
    for name in ("smoke", "smoke-perturbed"):
        shutil.copy(REPO / "recipes" / f"{name}.toml", folder)
    result = run_cli("run", str(folder / "smoke-perturbed.toml"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    int8 = next(
        t
        for t in load_manifest(out / "smoke-perturbed" / "latest")["targets"]
        if t["name"] == "x86-onnxruntime-int8"
    )
    assert int8["verdict"] == "fail" and int8["required"] is False
    compared = run_cli("compare", str(out / "smoke" / "latest"), str(out / "smoke-perturbed" / "latest"))
    assert compared.returncode == 1 and "**REGRESSED**" in compared.stdout


def test_compare_names_the_perturbed_target_and_exits_1(first_run, out, recipes):
    result, bundle, manifest = run_variant(recipes, out, "perturbed", **PERTURB_INT8)
    assert result.returncode == 1, result.stderr  # the noisy INT8 no longer answers like FP32
    int8 = manifest["targets"][2]
    assert int8["perturbed_weights"] == 2.0
    assert any(g["gate"] == "shapes" and not g["passed"] for g in int8["gates"])
    compared = run_cli("compare", str(out / "smoke" / "latest"), str(bundle))
    assert compared.returncode == 1, compared.stderr
    rows = {
        line.split("|")[1].strip(): line for line in compared.stdout.splitlines() if line.startswith("| ")
    }
    assert "**REGRESSED**" in rows["x86-onnxruntime-int8"] and "different" in rows["x86-onnxruntime-int8"]
    for name in ("torch-fp32", "x86-onnxruntime-fp32"):
        assert rows[name].rstrip(" |").endswith("unchanged") and "identical" in rows[name]
    assert "- **x86-onnxruntime-int8** · accuracy:" in compared.stdout
    assert "targets.2.perturb_weights" in compared.stdout
    as_json = json.loads(
        run_cli("compare", str(out / "smoke" / "latest"), str(bundle), "--format", "json").stdout
    )
    assert [r["status"] for r in as_json["targets"]] == ["unchanged", "unchanged", "regressed"]
    same = run_cli("compare", str(out / "smoke" / "latest"), str(out / "smoke" / "latest"))
    assert same.returncode == 0 and "No regression beyond tolerance" in same.stdout
    missing = run_cli("compare", str(out / "nowhere"), str(bundle))
    assert missing.returncode == 2 and "no such manifest" in missing.stderr


def test_regression_against_latest_is_a_gate_in_the_run(first_run, out, recipes):
    regression = {"[evaluation]\n": '[regression]\nbaseline = "latest"\n\n[evaluation]\n'}
    first, _, manifest = run_variant(recipes, out, "watched", **regression)
    assert first.returncode == 0, first.stderr
    assert manifest["regression"] is None  # nothing earlier to compare with
    before = manifest["targets"][2]["metric"]
    again, bundle, manifest = run_variant(recipes, out, "watched", **regression, **PERTURB_INT8)
    assert again.returncode == 1
    assert manifest["regression"]["breached"]
    assert "targets.2.perturb_weights" in manifest["regression"]["changed"][0]
    failures = [
        (case.get("classname"), case.find("failure").get("message"))
        for case in ET.parse(bundle / "junit.xml").getroot().iter("testcase")
        if case.find("failure") is not None and case.get("name") == "regression"
    ]
    assert len(failures) == 1
    classname, message = failures[0]
    int8 = manifest["targets"][2]
    assert classname == "target.x86-onnxruntime-int8"
    assert f"{before:.4f} -> {int8['metric']:.4f}" in message
    assert "exceeds max_metric_drop 0.50 pt" in message
    report = (bundle / "report.md").read_text()
    assert "## Changes since the baseline" in report and "**REGRESSED**" in report


def test_bundle_has_report_sections_pareto_and_release_matrix(first_run, out):
    bundle = out / "smoke" / "latest"
    manifest = load_manifest(bundle)
    assert (bundle / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (bundle / "report.md").read_text()
    order = [
        "# ✅ PASS",
        "| target | runtime |",
        "## Stages",
        "## Changes since the baseline",
        "## Release matrix",
    ]
    assert [report.index(s) for s in order] == sorted(report.index(s) for s in order)
    assert "![accuracy against latency](pareto.png)" in report
    onnx_evaluations = [
        e for s in manifest["stages"] for e in s.get("evaluations", []) if e["runtime"] == "onnxruntime"
    ]
    assert len(onnx_evaluations) == 2
    for evaluation in onnx_evaluations:
        shapes = evaluation["release_matrix"]["shapes"]
        assert set(shapes) == {f"{b}x{s}" for b in (1, 8, 32) for s in (16, 64, 128, 256)}
        assert all(r["error"] is None and r["latency"]["median_ms"] > 0 for r in shapes.values())
    assert report.count("| batch \\ sequence | 16 | 64 | 128 | 256 |") == 2
    for target in manifest["targets"][1:]:
        assert any(g["gate"] == "shapes" and g["passed"] for g in target["gates"])
    shown = run_cli("report", str(bundle))
    assert (
        shown.returncode == 0 and "x86-onnxruntime-int8" in shown.stdout and "Release matrix" in shown.stdout
    )


def test_verify_passes_then_names_a_flipped_byte(first_run, out, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree((out / "smoke" / "latest").resolve(), bundle)  # a copy: bundle files link the cache
    ok = run_cli("verify", str(bundle))
    assert ok.returncode == 0, ok.stderr
    assert "2 ONNX models load and run" in ok.stdout
    model = bundle / "targets" / "x86-onnxruntime-int8" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    bad = run_cli("verify", str(bundle))
    assert bad.returncode == 1
    assert bad.stderr.startswith("FAIL: targets/x86-onnxruntime-int8/model.onnx:")


def test_reproduce_reruns_a_bundle_and_refuses_changed_data(first_run, out, tmp_path):
    import shutil

    recipe_dir = tmp_path / "recipes"
    shutil.copytree(REPO / "recipes" / "data", recipe_dir / "data")
    recipe = fast_recipe(recipe_dir)
    made = run_cli("run", str(recipe), "--out", str(tmp_path / "a"))
    assert made.returncode == 0, made.stderr
    bundle = (tmp_path / "a" / "fast" / "latest").resolve()
    # into the same output folder: the cache there is warm, and still every stage is rebuilt
    again = run_cli("run", "--reproduce", str(bundle), "--out", str(tmp_path / "a"))
    assert again.returncode == 0, again.stderr
    assert "reused from cache" not in again.stderr
    manifest = load_manifest(tmp_path / "a" / "fast" / "latest")
    assert manifest["run_id"] != bundle.name
    assert not any(s["cached"] for s in manifest["stages"])  # rebuilt, not reused
    assert [r["status"] for r in manifest["regression"]["targets"]] == ["unchanged"] * 3
    assert manifest["regression"]["changed"] == []
    with open(recipe_dir / "data" / "sst2" / "test.tsv", "a") as f:
        f.write("an extra row\t1\n")
    # run where no other copy of the data lies (from the repository, its own data would match)
    refused = run_cli("run", "--reproduce", str(bundle), "--out", str(tmp_path / "c"), cwd=tmp_path)
    assert refused.returncode == 2 and "data file 'test'" in refused.stderr and "changed" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "c" / "fast").exists()
