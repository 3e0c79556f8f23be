"""The fine-tune stage, run directly: it trains (weights move, dev accuracy is tracked) and saves a
checkpoint that loads back."""

import torch
from safetensors.torch import load_file

from compress.models.loading import load_classifier
from compress.recipe.schema import FinetuneSpec
from compress.stages import finetune
from tests.stages.conftest import made


def test_finetune_trains_and_saves_a_loadable_checkpoint(stage_context, tiny_checkpoint):
    spec = FinetuneSpec(epochs=1, batch_size=32, learning_rate=2e-3, amp="off", evals_per_epoch=2)
    ctx = stage_context(spec, {"checkpoint": tiny_checkpoint})
    result = finetune.run(ctx)
    (artifact,) = result.artifacts
    assert (artifact.kind, artifact.runtime, artifact.precision) == ("checkpoint", "torch", "fp32")
    assert result.metrics["steps"] == 8 and len(result.metrics["dev_history"]) == 2
    assert result.metrics["amp"] == "off" and result.metrics["train_rows"] == 256
    out = made(ctx, artifact.folder, "checkpoint", "torch", "fp32")
    before = load_file(tiny_checkpoint.path / "model.safetensors")
    after = load_file(out.path / "model.safetensors")
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(moved) > len(before) // 2  # training changed most tensors
    assert load_classifier(out.path).num_labels == 2


def test_finetune_with_bf16_autocast_trains_too(stage_context, tiny_checkpoint):
    """`make test` trains with mixed precision at least once (the smoke recipe runs without it)."""
    spec = FinetuneSpec(epochs=1, batch_size=64, learning_rate=2e-3, amp="bf16", evals_per_epoch=1)
    result = finetune.run(stage_context(spec, {"checkpoint": tiny_checkpoint}))
    assert result.metrics["amp"] == "bfloat16"
    assert 0.0 <= result.metrics["best_dev_accuracy"] <= 1.0
