"""The quantize stage: one INT8 build per ISA its targets name, run directly on a tiny graph."""

import json
from types import SimpleNamespace as T

from compress.quantization import isa as isa_module
from compress.recipe.schema import ExportSpec, QuantizeSpec, Recipe
from compress.stages import export, quantize
from tests.conftest import RECIPE
from tests.stages.conftest import made


def test_one_build_per_isa_named_by_int8_targets(monkeypatch):
    monkeypatch.setattr(
        isa_module, "cpu_info", lambda: {"machine": "x86_64", "isa": ["avx512_vnni"], "model": "x"}
    )
    targets = [
        T(name="fp32", runtime="onnxruntime", precision="fp32", isa=None),
        T(name="here", runtime="onnxruntime", precision="int8", isa=None),
        T(name="old-xeon", runtime="onnxruntime", precision="int8", isa="avx2"),
        T(name="also-here", runtime="onnxruntime", precision="int8", isa="avx512_vnni"),
    ]
    assert quantize.isa_builds(targets, "auto") == {
        "avx512_vnni": ["here", "also-here"],
        "avx2": ["old-xeon"],
    }
    assert quantize.isa_builds(targets[:1], "arm64") == {"arm64": []}


def test_quantize_builds_each_isa_and_records_how(stage_context, tiny_checkpoint, tmp_path):
    recipe = Recipe.model_validate(
        {
            **RECIPE,
            "targets": [
                {
                    "name": "a",
                    "runtime": "onnxruntime",
                    "precision": "int8",
                    "isa": "avx2",
                    "max_accuracy_drop": 50.0,
                },
                {
                    "name": "b",
                    "runtime": "onnxruntime",
                    "precision": "int8",
                    "isa": "arm64",
                    "max_accuracy_drop": 50.0,
                },
            ],
        }
    )
    ctx = stage_context(ExportSpec(), {"checkpoint": tiny_checkpoint}, recipe)
    onnx_dir = made(ctx, export.run(ctx).artifacts[0].folder, "onnx", "onnxruntime", "fp32")
    spec = QuantizeSpec(min_label_agreement=0.5, check_shapes=["1x16", "4x32"])
    qctx = ctx.__class__(recipe, spec, ctx.splits, {"onnx": onnx_dir}, tmp_path / "q", ctx.progress)
    qctx.out_dir.mkdir()
    result = quantize.run(qctx)
    assert [(a.folder, a.serves) for a in result.artifacts] == [("onnx-avx2", ("a",)), ("onnx-arm64", ("b",))]
    assert result.failure is None
    for isa, reduce_range in (("avx2", True), ("arm64", False)):
        record = json.loads((qctx.out_dir / f"onnx-{isa}" / "quantization.json").read_text())
        assert record["isa"] == isa and record["reduce_range"] is reduce_range
        assert set(record["shape_matrix"]) == {"1x16", "4x32"}
    assert sorted(p.name for p in qctx.out_dir.iterdir()) == ["onnx-arm64", "onnx-avx2"]  # no scratch left
