import xml.etree.ElementTree as ET

from compress.core.records import Manifest
from compress.output.junit import render_junit
from compress.output.report import to_markdown
from tests.factories import ENVIRONMENT, manifest_json


def manifest(verdict="fail") -> dict:
    gate_ok = {"gate": "accuracy", "passed": True, "value": 0.0, "limit": 1.0, "message": "ok"}
    gate_bad = {
        "gate": "latency",
        "passed": False,
        "value": 12.0,
        "limit": 10.0,
        "message": "latency 12.00 ms exceeds budget 10.00 ms (over by 2.00 ms, 1.20x)",
    }
    target = {
        "name": "x86 & <co>",
        "runtime": "onnxruntime",
        "precision": "fp32",
        "required": True,
        "metric_name": "accuracy",
        "baseline": 0.9,
        "baseline_from": "finetune torch/fp32",
        "metric": 0.9,
        "drop": 0.0,
        "size_mb": 90.0,
        "latency": {"median_ms": 12.0, "p90_ms": 13.0, "batch": 1, "sequence": 128},
        "verdict": verdict,
        "budgets": {
            "max_accuracy_drop": 1.0,
            "max_latency_ms": 10.0,
            "max_size_mb": None,
            "latency_shape": "1x128",
        },
        "gates": [gate_ok, gate_bad],
    }
    return manifest_json(
        verdict=verdict,
        targets=[target],
        stages=[
            {"name": "finetune", "status": "ok", "cached": True, "seconds": 0.1},
            {"name": "export", "status": "failed", "reason": "parity", "seconds": 2.0},
        ],
        environment=ENVIRONMENT,
    )


def test_junit_has_one_case_per_gate_and_failed_stage():
    root = ET.fromstring(render_junit(Manifest.from_json(manifest())))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("stage.export", "ran"),
        ("target.x86 & <co>", "accuracy"),
        ("target.x86 & <co>", "latency"),
    ]
    assert suite.get("failures") == "2"
    assert "over by 2.00 ms" in cases[2].find("failure").get("message")


def test_report_leads_with_verdict_and_names_breach():
    text = to_markdown(Manifest.from_json(manifest()))
    assert text.splitlines()[0].startswith("# ❌ FAIL")
    assert "**FAIL**" in text and "exceeds budget" in text and "parity" in text
