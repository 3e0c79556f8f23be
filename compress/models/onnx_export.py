"""Export a checkpoint to ONNX: the only module that imports optimum.

optimum-onnx's exporter is used rather than bare torch.onnx: with torch 2.13 + transformers 4.57 it
knows BERT's inputs, names the dynamic batch/sequence axes and copies config and tokenizer beside
the graph, so the ONNX folder is a deployable unit.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from compress.models.loading import load_classifier, load_tokenizer


def export_onnx(checkpoint: Path, out: Path, opset: int) -> None:
    """`checkpoint` as `out/model.onnx` plus its config and tokenizer. Exports from the model as
    compress loads it, so per-layer pruned checkpoints export too."""
    from optimum.exporters.onnx import onnx_export_from_model

    for name in ("optimum", "transformers", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    model = load_classifier(checkpoint)
    # What is traced, per family (torch 2.13, transformers 4.57, on the CPU in FP32): each model's
    # default attention, i.e. sdpa where the family has it (BERT, RoBERTa, DistilBERT, ALBERT,
    # ModernBERT) and eager otherwise (DeBERTa-v2, MPNet, ELECTRA); both trace to plain ops, and
    # the parity check on padded mixed-length batches (tests/test_families.py: every family, rows
    # past ModernBERT's local window) holds within 1e-3. ModernBERT may torch.compile its embeddings
    # (`reference_compile`, on for CUDA with triton); compiled code must never reach the tracer.
    if getattr(model.config, "reference_compile", None):
        model.config.reference_compile = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about constants in the attention mask
        onnx_export_from_model(
            model,
            output=str(out),
            task="text-classification",
            opset=opset,
            do_validation=False,  # our own parity check is stricter and fails the stage
            no_post_process=True,
        )
    load_tokenizer(checkpoint).save_pretrained(out)
