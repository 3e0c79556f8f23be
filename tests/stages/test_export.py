"""The export stage, run directly: an ONNX folder with dynamic axes that answers like PyTorch, and a
parity breach that fails the stage with what was measured."""

import pytest

from compress.core.errors import StageFailed
from compress.evaluation.parity import dynamic_axes_problems
from compress.recipe.schema import ExportSpec
from compress.stages import export


def test_export_writes_a_deployable_folder_with_parity(stage_context, tiny_checkpoint):
    ctx = stage_context(ExportSpec(), {"checkpoint": tiny_checkpoint})
    result = export.run(ctx)
    folder = ctx.out_dir / result.artifacts[0].folder
    assert {"model.onnx", "config.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert dynamic_axes_problems(folder / "model.onnx") == []
    parity = result.metrics["parity"]
    assert parity["rows"] == 96 and parity["max_abs_logit_diff"] < 1e-3 and parity["label_agreement"] == 1.0


def test_parity_breach_fails_with_the_measurement(stage_context, tiny_checkpoint):
    ctx = stage_context(ExportSpec(max_abs_logit_diff=1e-12), {"checkpoint": tiny_checkpoint})
    with pytest.raises(StageFailed, match="export.max_abs_logit_diff") as info:
        export.run(ctx)
    assert info.value.metrics["parity"]["rows"] == 96
