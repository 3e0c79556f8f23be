"""Export the checkpoint to ONNX and prove it computes the same thing (parity fails the stage).

optimum-onnx's exporter is used rather than bare torch.onnx: with torch 2.13 + transformers 4.57 it
knows BERT's inputs, names the dynamic batch/sequence axes and copies config and tokenizer beside
the graph, so the ONNX folder is a deployable unit. This is the only module importing optimum.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import onnx

from compress.data import pad_batch, tokenize
from compress.errors import StageFailed
from compress.modeling import load_classifier, load_tokenizer
from compress.runtimes import RUNTIMES
from compress.stages import NewArtifact, StageContext, StageResult


def export_onnx(checkpoint, out, opset: int) -> None:
    """Export from the model as compress loads it, so per-layer pruned checkpoints export too."""
    from optimum.exporters.onnx import onnx_export_from_model

    for name in ("optimum", "transformers", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model = load_classifier(checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about constants in the attention mask
        onnx_export_from_model(
            model,
            output=str(out),
            task="text-classification",
            opset=opset,
            do_validation=False,  # our own parity check below is stricter and fails the stage
            no_post_process=True,
        )
    load_tokenizer(checkpoint).save_pretrained(out)


def dynamic_axes_problems(model_path) -> list[str]:
    """Inputs whose batch or sequence axis is fixed: such a graph breaks on other shapes."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    problems = []
    for inp in graph.input:
        dims = inp.type.tensor_type.shape.dim
        fixed = [i for i, d in enumerate(dims) if not d.dim_param]
        if fixed:
            problems.append(f"input '{inp.name}' has fixed axes {fixed}")
    return problems


def parity(reference, candidate, batches) -> dict:
    """Max |Δlogit| and label agreement between two predictors over the same batches."""
    max_diff, agree, rows = 0.0, 0, 0
    for batch in batches:
        ref, cand = reference(batch), candidate(batch)
        max_diff = max(max_diff, float(np.abs(ref - cand).max()))
        agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
        rows += len(ref)
    return {"max_abs_logit_diff": max_diff, "label_agreement": agree / rows, "rows": rows}


def run(ctx: StageContext) -> StageResult:
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
    test = ctx.splits["test"]
    ids = tokenize(tokenizer, test.texts[: spec.parity_rows], ctx.recipe.data.max_length)
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
