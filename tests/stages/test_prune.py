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


def test_a_checkpoint_that_reloads_to_other_logits_fails_the_stage(
    stage_context, tiny_checkpoint, monkeypatch
):
    """The stage reloads what it saved and compares logits; a save that loses weights is caught."""
    from safetensors.torch import load_file, save_file

    saved = prune.save_classifier

    def lossy_save(model, tokenizer, out):
        saved(model, tokenizer, out)
        weights = load_file(out / "model.safetensors")
        weights["classifier.weight"] = weights["classifier.weight"] + 0.01
        save_file(weights, out / "model.safetensors", metadata={"format": "pt"})

    monkeypatch.setattr(prune, "save_classifier", lossy_save)
    spec = PruneSpec(heads_fraction=0.5, importance="magnitude", recovery=None)
    with pytest.raises(StageFailed, match="reloads to different logits") as info:
        prune.run(stage_context(spec, {"checkpoint": tiny_checkpoint}))
    assert info.value.metrics["reload_max_abs_logit_diff"] > 1e-4


def test_distillation_loss_mixes_kl_to_the_teacher_and_cross_entropy():
    import torch
    import torch.nn.functional as F

    class Teacher(torch.nn.Module):
        def forward(self, **batch):
            return type("Out", (), {"logits": torch.tensor([[2.0, -1.0], [0.5, 0.5]])})()

    student = torch.tensor([[0.0, 1.0], [1.0, -1.0]])
    labels = torch.tensor([0, 1])
    t = 2.0
    kl = F.kl_div(
        F.log_softmax(student / t, dim=-1),
        F.softmax(torch.tensor([[2.0, -1.0], [0.5, 0.5]]) / t, dim=-1),
        reduction="batchmean",
    ) * (t**2)
    ce = F.cross_entropy(student, labels)
    for weight in (0.0, 0.3, 1.0):
        loss = prune.DistillationLoss(Teacher(), temperature=t, weight=weight)(student, labels, {})
        assert torch.isclose(loss, weight * kl + (1 - weight) * ce)
    # a student that copies the teacher has no KL left
    same = prune.DistillationLoss(Teacher(), temperature=t, weight=1.0)(
        torch.tensor([[2.0, -1.0], [0.5, 0.5]]), labels, {}
    )
    assert same.abs() < 1e-6
