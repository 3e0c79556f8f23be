"""Export the checkpoint to ONNX and prove it computes the same thing (parity fails the stage)."""

from __future__ import annotations

from compress.core.artifact import NewArtifact
from compress.core.errors import StageFailed
from compress.core.stage import StageContext, StageResult
from compress.data.batches import pad_batch, tokenize
from compress.evaluation.parity import dynamic_axes_problems, parity
from compress.models.loading import load_tokenizer
from compress.models.onnx_export import export_onnx
from compress.recipe.schema import ExportSpec
from compress.runtimes import RUNTIMES


def run(ctx: StageContext[ExportSpec]) -> StageResult:
    """Export, check the axes stayed dynamic, then compare logits with PyTorch on test rows in
    batches of different sizes and lengths."""
    spec = ctx.spec
    checkpoint = ctx.inputs["checkpoint"].path
    out = ctx.out_dir / "onnx"
    with ctx.progress.bar("export ONNX", 1) as advance:
        export_onnx(checkpoint, out, spec.opset)
        advance()
    problems = dynamic_axes_problems(out / "model.onnx")
    if problems:
        raise StageFailed("exported graph lost its dynamic axes: " + "; ".join(problems))

    tokenizer = load_tokenizer(checkpoint)
    ids = tokenize(tokenizer, ctx.splits.test.texts[: spec.parity_rows], ctx.recipe.data.max_length)
    pad_id = tokenizer.pad_token_id or 0
    # batches of different sizes and lengths exercise both dynamic axes
    batches = [pad_batch(ids[i : i + 16], pad_id) for i in range(0, len(ids), 16)]
    result = parity(RUNTIMES["torch"](checkpoint), RUNTIMES["onnxruntime"](out), batches)
    metrics = {"opset": spec.opset, "parity": result}
    if result["max_abs_logit_diff"] > spec.max_abs_logit_diff:
        raise StageFailed(
            f"ONNX parity: max |Δlogit| {result['max_abs_logit_diff']:.2e} > "
            f"export.max_abs_logit_diff {spec.max_abs_logit_diff:.2e} over {result['rows']} rows",
            metrics,
        )
    if result["label_agreement"] < spec.min_label_agreement:
        raise StageFailed(
            f"ONNX parity: label agreement {result['label_agreement']:.4f} < "
            f"export.min_label_agreement {spec.min_label_agreement}",
            metrics,
        )
    return StageResult(artifacts=[NewArtifact("onnx", "onnxruntime", "fp32", "onnx")], metrics=metrics)
