"""The prune stage, run directly: heads and FFN neurons are physically removed, MACs fall by what
was asked, and the saved checkpoint reloads to the same logits."""

import pytest

from compress.core.errors import StageFailed
from compress.models.loading import load_classifier
from compress.recipe.schema import PruneSpec, RecoverySpec
from compress.stages import prune
from tests.stages.conftest import made


def test_prune_removes_heads_and_neurons_and_reloads(stage_context, tiny_checkpoint):
    spec = PruneSpec(heads_fraction=0.5, ffn_fraction=0.5, importance_rows=32, recovery=None)
    ctx = stage_context(spec, {"checkpoint": tiny_checkpoint})
    result = prune.run(ctx)
    m = result.metrics
    assert m["heads_removed"] == 2 and m["after"]["heads"] == [1, 1]
    assert m["after"]["ffn"] == [32, 32] and m["ffn_neurons_removed"] == 64
    assert m["encoder_macs_reduction"] > 0.4 and m["reload_max_abs_logit_diff"] <= 1e-4
    out = made(ctx, result.artifacts[0].folder, "checkpoint", "torch", "fp32")
    model = load_classifier(out.path)
    assert model.bert.encoder.layer[0].intermediate.dense.out_features == 32


def test_prune_to_a_mac_target_reaches_it(stage_context, tiny_checkpoint):
    spec = PruneSpec(target_macs_fraction=0.3, importance="magnitude", recovery=None)
    result = prune.run(stage_context(spec, {"checkpoint": tiny_checkpoint}))
    assert result.metrics["encoder_macs_reduction"] >= 0.3


def test_recovery_distils_from_the_teacher(stage_context, tiny_checkpoint):
    recovery = RecoverySpec(epochs=1, batch_size=32, amp="off", train_rows=64, evals_per_epoch=1)
    spec = PruneSpec(heads_fraction=0.5, importance_rows=32, recovery=recovery)
    result = prune.run(stage_context(spec, {"checkpoint": tiny_checkpoint}))
    assert result.metrics["recovery"]["train_rows"] == 64 and result.metrics["recovery"]["steps"] == 2


def test_a_shrink_short_of_the_plan_fails_the_stage(stage_context, tiny_checkpoint, monkeypatch):
    """If the surgery removes less than asked, the stage says so instead of shipping the model."""
    monkeypatch.setattr(prune.pruning, "prune_ffn", lambda model, keep: None)  # a surgery that does nothing
    spec = PruneSpec(ffn_fraction=0.5, importance="magnitude", recovery=None)
    with pytest.raises(StageFailed, match="removed 0 FFN neurons, asked 64"):
        prune.run(stage_context(spec, {"checkpoint": tiny_checkpoint}))
