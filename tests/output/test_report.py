"""The report's sections, rendered from hand-made manifests: markdown and rich tell the same story."""

import dataclasses
import io

import pytest
from rich.console import Console

from compress.core.records import Comparison, Manifest, Tolerances
from compress.output.report import blocks_markdown, comparison_blocks, print_rich, release_blocks, to_markdown
from compress.verdict.regression import compare
from tests.factories import manifest_json, target_json
from tests.output.test_bundle import manifest


def comparison() -> Comparison:
    t = target_json("int8", metric=0.9, size_mb=10.0)
    env = {"python": "3.11", "cpu": {"model": "c"}}
    old = manifest_json(run_id="old", targets=[t], environment={**env, "torch": "1"})
    new = manifest_json(run_id="new", targets=[{**t, "metric": 0.85}], environment={**env, "torch": "2"})
    return compare(Manifest.from_json(old), Manifest.from_json(new), Tolerances())


def test_comparison_table_marks_the_regressed_target_and_what_changed():
    text = "\n".join(blocks_markdown(comparison_blocks(comparison())))
    assert "**Regression beyond tolerance.**" in text
    assert "| int8 | 0.9000 → 0.8500 | -5.00 | — → — | 10.00 → 10.00 | — | **REGRESSED** |" in text
    assert "- changed since the baseline: torch 1 -> 2" in text


def release_manifest():
    cell = {
        "rows": 8,
        "label_agreement": 1.0,
        "max_abs_logit_diff": 0.0,
        "error": None,
        "latency": {"median_ms": 2.0, "p90_ms": 2.0, "batch": 1, "sequence": 16},
    }
    shapes = {
        "1x16": cell,
        "1x64": {**cell, "label_agreement": 0.5},
        "8x16": cell,
        "8x64": {**cell, "error": "fails to run: bad axis", "label_agreement": None, "latency": None},
    }
    m = manifest()
    artifact = {"kind": "onnx", "runtime": "onnxruntime", "precision": "fp32", "folder": "onnx"}
    m["stages"] = [
        {
            "name": "export",
            "status": "ok",
            "artifacts": [{**artifact, "serves": [], "sha256": "s", "bytes": 1}],
            "evaluations": [
                {
                    "runtime": "onnxruntime",
                    "precision": "fp32",
                    "rows": 8,
                    "accuracy": 0.9,
                    "macro_f1": 0.9,
                    "latency": {},
                    "size_bytes": 1,
                    "release_matrix": {
                        "reference": "r",
                        "shapes": shapes,
                        "problems": ["1x64: x", "8x64: y"],
                    },
                }
            ],
        }
    ]
    return m


def test_release_grid_has_batches_down_and_sequences_across():
    text = "\n".join(blocks_markdown(release_blocks(Manifest.from_json(release_manifest()))))
    assert "**export: onnxruntime/fp32 — 2 shapes FAIL**" in text
    assert "| batch \\ sequence | 16 | 64 |" in text
    assert "| 1 | ✓ 100.0% · 2.0 ms | ✗ 50.0% · 2.0 ms |" in text
    assert "| 8 | ✓ 100.0% · 2.0 ms | ✗ fails to run: bad axis |" in text


def test_markdown_and_terminal_carry_the_same_sections():
    m = Manifest.from_json({**release_manifest(), "regression": comparison().to_json()})
    md = to_markdown(m)
    buffer = io.StringIO()
    print_rich(m, Console(file=buffer, width=200, color_system=None))
    terminal = buffer.getvalue()
    for heading in ("Gate failures", "Stages", "Changes since the baseline", "Release matrix", "Environment"):
        assert f"## {heading}" in md and heading in terminal
    assert "\n\n\n" not in md
    assert "REGRESSED" in terminal and "x86 & <co>" in terminal  # cells are text, not rich markup


def judged_manifest(pool_answers: bool = True, **fields) -> Manifest:
    """A manifest around one target the real judge decided: test_judge.py's case of a candidate 0.9
    points worse on the test rows and 0.2 on the pool (whose answers `pool_answers` gives or not)."""
    from tests.pipeline.test_judge import judge_with, pool_case

    pool, baseline, cand = pool_case(20)
    if not pool_answers:
        cand = dataclasses.replace(cand, pool_predictions=None)
    record = judge_with(pool, baseline, cand, **fields)
    return Manifest.from_json(manifest_json(targets=[record.to_json()], verdict="fail"))


def test_how_sure_names_each_gate_with_its_outcome_interval_and_rows():
    text = to_markdown(judged_manifest(max_disagreement=0.012, max_accuracy_drop=5.0))
    sure = text.split("## How sure")[1].split("## ")[0]
    assert "the target's 95% over 11 possible looks" in sure
    assert "  - accuracy → pass: " in sure and "99.55% CI" in sure
    (agreement,) = [line for line in sure.splitlines() if line.startswith("  - agreement → pass: ")]
    rows = int(agreement.split(" of ")[1].split(" rows")[0])
    assert rows > 2000 and "CI" in agreement  # drew pool rows; the table shows the same count
    assert f"/{rows} / 1.2%" in text.split("## ")[0]


@pytest.mark.parametrize(
    "on_inconclusive,cell,effect",
    [("fail", "**INCONCLUSIVE**", ""), ("pass", "inconclusive (passes)", " (lets the run pass)")],
)
def test_an_inconclusive_gate_is_marked_and_says_what_it_does_to_the_run(on_inconclusive, cell, effect):
    text = to_markdown(judged_manifest(pool_answers=False, on_inconclusive=on_inconclusive))
    assert f"| {cell} |" in text
    assert f"  - ⚠ accuracy → inconclusive{effect}: " in text
