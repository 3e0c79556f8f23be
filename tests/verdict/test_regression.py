"""The regression judgement, table-tested on hand-made manifests: no model needed."""

from dataclasses import dataclass

import pytest

from compress.core.errors import CompressError
from compress.core.records import Manifest, RecipeRecord, TargetRecord, Tolerances, load_manifest
from compress.verdict.regression import compare, compare_target, recipe_diff, what_changed
from tests import factories


def target(name="t", metric=0.90, latency=10.0, size=50.0, sha="a", shape=(1, 128)) -> TargetRecord:
    return factories.target(
        name,
        metric=metric,
        latency=None
        if latency is None
        else {"median_ms": latency, "p90_ms": latency, "batch": shape[0], "sequence": shape[1]},
        size_mb=size,
        artifact_sha256=sha,
    )


def manifest(*targets: TargetRecord, **fields) -> Manifest:
    return factories.manifest(targets=[t.to_json() for t in targets], **fields)


@dataclass
class Case:
    name: str
    new: TargetRecord
    tol: Tolerances
    status: str
    failed_gates: list[str]


CASES = [
    Case("same artifact and metric", target(), Tolerances(), "unchanged", []),
    Case("retrained, same accuracy", target(sha="b"), Tolerances(), "changed", []),
    Case(
        "drop exactly at tolerance",
        target(metric=0.895, sha="b"),
        Tolerances(max_metric_drop=0.5),
        "changed",
        [],
    ),
    Case(
        "drop over tolerance",
        target(metric=0.8949, sha="b"),
        Tolerances(max_metric_drop=0.5),
        "regressed",
        ["accuracy"],
    ),
    Case("improvement", target(metric=0.95, sha="b"), Tolerances(max_metric_drop=0.0), "changed", []),
    Case("same artifact timed slower: noise", target(latency=100.0), Tolerances(), "unchanged", []),
    Case(
        "slower than allowed",
        target(latency=16.0),
        Tolerances(max_latency_increase=0.5),
        "regressed",
        ["latency 1x128"],
    ),
    Case(
        "slower within allowed",
        target(latency=15.0, sha="b"),
        Tolerances(max_latency_increase=0.5),
        "changed",
        [],
    ),
    Case(
        "other latency shape: not judged",
        target(latency=99.0, shape=(8, 64), sha="b"),
        Tolerances(max_latency_increase=0.1),
        "changed",
        [],
    ),
    Case("bigger than allowed", target(size=53.0), Tolerances(), "regressed", ["size"]),
    Case("size not judged", target(size=500.0, sha="b"), Tolerances(max_size_increase=None), "changed", []),
    Case(
        "not built now",
        target(metric=None, latency=None, size=None, sha=None),
        Tolerances(),
        "regressed",
        ["built"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_compare_target(case):
    row = compare_target(target(), case.new, case.tol)
    assert row.status == case.status
    failed = [g.message.split(":")[0] for g in row.gates if not g.passed]
    assert failed == case.failed_gates
    for g in row.gates:
        assert g.gate == "regression"


def test_failed_gate_message_names_old_and_new_values():
    row = compare_target(target(metric=0.9), target(metric=0.88, sha="b"), Tolerances(max_metric_drop=0.5))
    (gate,) = [g for g in row.gates if not g.passed]
    assert gate.message == "accuracy: 0.9000 -> 0.8800 (-2.00 pt) exceeds max_metric_drop 0.50 pt"


def test_added_and_removed_targets_are_listed_not_judged():
    old = manifest(target("kept"), target("gone"))
    new = manifest(target("kept"), target("new"))
    result = compare(old, new, Tolerances())
    assert [(r.name, r.status) for r in result.targets] == [
        ("kept", "unchanged"),
        ("new", "added"),
        ("gone", "removed"),
    ]
    assert not result.breached
    assert result.targets[1].old is None and result.targets[2].new is None


def test_breached_when_any_target_regressed():
    result = compare(manifest(target()), manifest(target(metric=0.5)), Tolerances())
    assert result.breached


def test_what_changed_names_recipe_keys_data_versions_and_cpu():
    old = manifest(
        recipe={
            "path": "/a",
            "sha256": "1",
            "resolved": {"data": {"train": "/a/train.tsv", "max_length": 64}},
        },
        data={"files": {"train": "x", "test": "y"}},
        environment={"python": "3.11", "torch": "2.13", "onnxruntime": "1.32", "cpu": {"model": "EPYC"}},
    )
    new = manifest(
        recipe={
            "path": "/b",
            "sha256": "2",
            "resolved": {"data": {"train": "/b/train.tsv", "max_length": 128}},
        },
        data={"files": {"train": "x", "test": "z"}},
        environment={"python": "3.11", "torch": "2.13", "onnxruntime": "1.33", "cpu": {"model": "Xeon"}},
    )
    assert what_changed(old, new.recipe, new.data, new.environment) == [
        "recipe changed: data.max_length",
        "data file 'test' changed",
        "onnxruntime 1.32 -> 1.33",
        "CPU EPYC -> Xeon (latency not comparable)",
    ]
    assert what_changed(old, old.recipe, old.data, old.environment) == []
    assert isinstance(new.recipe, RecipeRecord)


def test_recipe_diff_walks_lists_and_skips_locations():
    old = {"targets": [{"a": 1}, {"a": 2}], "model": {"path": "/x"}}
    new = {"targets": [{"a": 1}, {"a": 3}], "model": {"path": "/y"}}
    assert recipe_diff(old, new) == ["targets.1.a"]
    assert recipe_diff({"targets": [1]}, {"targets": [1, 2]}) == ["targets"]


def test_load_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(CompressError, match="no such manifest"):
        load_manifest(tmp_path / "missing")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CompressError, match="not a readable manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(CompressError, match="not a compress manifest"):
        load_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text('{"schema": 99, "targets": []}')
    with pytest.raises(CompressError, match="manifest schema 99; this version of compress reads 2, 3"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"schema": 3, "targets": [{"name": 1}]}')
    with pytest.raises(CompressError, match="not a compress manifest: "):
        load_manifest(tmp_path)
