"""Hand-made manifest records for tests: JSON dicts with only what a test cares about, completed
with neutral values and read through the same `from_json` a real bundle goes through."""

from __future__ import annotations

from compress.core.records import Manifest, TargetRecord

ENVIRONMENT = {
    "python": "3.11",
    "torch": "t",
    "transformers": "tr",
    "onnx": "o",
    "onnxruntime": "ort",
    "cpu": {"model": "cpu", "isa": ["avx2"]},
}


def target_json(name: str = "t", **fields) -> dict:
    """A target as manifest.json holds it; `fields` override."""
    base = {
        "name": name,
        "runtime": "onnxruntime",
        "precision": "fp32",
        "metric_name": "accuracy",
        "budgets": {"max_accuracy_drop": 1.0},
        "verdict": "pass",
    }
    return {**base, **fields}


def target(name: str = "t", **fields) -> TargetRecord:
    return TargetRecord.from_json(target_json(name, **fields))


def manifest_json(**fields) -> dict:
    base = {
        "schema": 3,
        "recipe_name": "r",
        "run_id": "20260101T000000Z",
        "created": "2026-01-01T00:00:00+00:00",
        "verdict": "pass",
        "seconds": 1.5,
        "recipe": {"path": "/r.toml", "copy": "recipe.toml", "sha256": "1", "resolved": {}},
        "data": {"spec": {}, "files": {}},
        "environment": ENVIRONMENT,
        "stages": [],
        "targets": [target_json()],
        "regression": None,
        "pareto": None,
        "files": [],
    }
    return {**base, **fields}


def manifest(**fields) -> Manifest:
    return Manifest.from_json(manifest_json(**fields))
