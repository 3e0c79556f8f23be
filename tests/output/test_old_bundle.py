"""A bundle written before the typed manifest (schema 2, commit 61a7808) still verifies, compares and
reports, and reads into the same records a new bundle does."""

import json

from compress.core.records import load_manifest
from tests.conftest import REPO, run_cli

FIXTURES = REPO / "tests" / "fixtures"
OLD = FIXTURES / "bundle-61a7808"
PREVIOUS = FIXTURES / "bundle-61a7808-previous-manifest.json"


def test_old_bundle_verifies():
    result = run_cli("verify", str(OLD))
    assert result.returncode == 0, result.stderr
    assert "31 files match the manifest, 3 ONNX models load and run" in result.stdout


def test_old_bundles_compare_exactly_as_they_did():
    result = run_cli("compare", str(PREVIOUS), str(OLD))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (FIXTURES / "bundle-61a7808-compare.md").read_text()


def test_old_bundle_reports_every_section():
    result = run_cli("report", str(OLD))
    assert result.returncode == 0, result.stderr
    for text in (
        "PASS",
        "legacy",
        "onnx-int8",
        "gpu-fp16",
        "CPU proxy",
        "Release matrix",
        "How sure",
        "Environment",
    ):
        assert text in result.stdout


def test_old_manifest_reads_into_records_without_losing_a_value():
    raw = json.loads((OLD / "manifest.json").read_text())
    manifest = load_manifest(OLD)
    assert manifest.schema_version == 2 and manifest.verdict == "pass"
    assert [t.verdict for t in manifest.targets] == ["pass", "pass", "pass", "proxy"]
    assert manifest.regression is not None and not manifest.regression.breached
    written = manifest.to_json()

    def same(old, new, where="manifest"):
        if isinstance(old, dict):
            for key, value in old.items():
                assert key in new, f"{where}.{key} lost"
                same(value, new[key], f"{where}.{key}")
        elif isinstance(old, list):
            assert len(old) == len(new), where
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                same(a, b, f"{where}[{i}]")
        else:
            assert old == new, where

    same({k: v for k, v in raw.items() if k != "integrity"}, written)


def test_a_new_run_compares_against_an_old_bundle(first_run, out):
    _, result = first_run
    assert result.returncode == 0, result.stderr
    result = run_cli("compare", str(OLD), str(out / "smoke" / "latest"), "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    comparison = json.loads(result.stdout)
    assert comparison["baseline"]["run_id"] == "20261130T011343Z"
    assert {r["name"] for r in comparison["targets"]} >= {"torch-fp32", "onnx-int8", "x86-onnxruntime-int8"}
