"""Structured pruning: score, cut heads and FFN neurons for real, recover by distillation, prove it.

The stage fails (not warns) if the model did not shrink by what the recipe asked, or if the saved
checkpoint does not reload to the same logits.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from compress.core.artifact import NewArtifact
from compress.core.errors import StageFailed
from compress.core.stage import StageContext, StageResult
from compress.data.batches import pad_batch, tokenize
from compress.models import distributed, pruning
from compress.models.loading import (
    forward_inputs,
    load_classifier,
    load_tokenizer,
    only_inputs,
    save_classifier,
)
from compress.models.training import train_classifier
from compress.recipe.schema import PruneSpec, Recipe, RecoverySpec

RELOAD_TOLERANCE = 1e-4


class DistillationLoss(torch.nn.Module):
    """Temperature-scaled KL to the teacher's logits, plus cross-entropy on the labels. A module, so
    the teacher travels with it to every training process."""

    def __init__(self, teacher: torch.nn.Module, temperature: float, weight: float):
        super().__init__()
        self.teacher, self.temperature, self.weight = teacher.eval(), temperature, weight

    def forward(self, student_logits: torch.Tensor, labels: torch.Tensor, batch: dict) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(**only_inputs(batch, forward_inputs(self.teacher))).logits.float()
        t = self.temperature
        student = student_logits.float()
        kl = F.kl_div(
            F.log_softmax(student / t, dim=-1), F.softmax(teacher_logits / t, dim=-1), reduction="batchmean"
        ) * (t**2)
        return self.weight * kl + (1 - self.weight) * F.cross_entropy(student, labels)


def reads(recipe: Recipe) -> dict:
    """How many processes train the recovery: their dropout masks differ, so the weights do too."""
    return {"processes": distributed.current().size}


def plan_fractions(spec: PruneSpec, model) -> tuple[float, float]:
    """The (heads, FFN) fractions to remove: as given, or the one fraction that reaches the MAC target
    (planned on the model's real shape: config keys differ per family)."""
    if spec.target_macs_fraction is None:
        return spec.heads_fraction, spec.ffn_fraction
    f = pruning.fraction_for_macs(
        **pruning.plan_shape(model), target=spec.target_macs_fraction, sequence=spec.macs_sequence
    )
    return f, f


def measure(model, spec: PruneSpec) -> dict:
    """Parameters, encoder MACs, heads and FFN widths per layer: before and after pruning."""
    return {
        "parameters": pruning.parameter_counts(model),
        "encoder_macs": pruning.encoder_macs(model, spec.macs_batch, spec.macs_sequence),
        "heads": pruning.head_counts(model),
        "ffn": pruning.ffn_sizes(model),
    }


def run(ctx: StageContext[PruneSpec]) -> StageResult:
    """Score, cut, recover by distillation, save, and prove the cut and the saved checkpoint."""
    spec = ctx.spec
    teacher_path = ctx.inputs["checkpoint"].path
    device = distributed.current().device
    tokenizer = load_tokenizer(teacher_path)
    pad_id = tokenizer.pad_token_id or 0
    model = load_classifier(teacher_path).to(device)
    heads_fraction, ffn_fraction = plan_fractions(spec, model)
    before = measure(model, spec)
    dev_ids = tokenize(tokenizer, ctx.splits.dev.texts, ctx.recipe.data.max_length)
    head_scores, ffn_scores = _importance(ctx, model, dev_ids, pad_id, device)
    n_remove = round(heads_fraction * sum(before["heads"]))  # distinct layers (ALBERT shares one)
    try:
        heads = pruning.select_heads(
            pruning.normalize_per_layer(head_scores), n_remove, spec.min_heads_per_layer, spec.per_layer
        )
    except ValueError as exc:
        raise StageFailed(f"prune: {exc}") from None
    # FFN first: its indices refer to the unpruned layers, and head pruning does not touch the FFN
    if ffn_fraction > 0:
        pruning.prune_ffn(model, pruning.select_ffn(ffn_scores, ffn_fraction, spec.uniform_ffn))
    if heads:
        pruning.prune_heads(model, heads)
    after = measure(model, spec)
    shrink = _check_shrink(before, after, n_remove, ffn_fraction, spec)
    recovery = None
    if spec.recovery is not None:
        recovery = _recover(ctx, spec.recovery, model, teacher_path, tokenizer, dev_ids)

    out = ctx.out_dir / "checkpoint"
    model = model.float().cpu().eval()
    save_classifier(model, tokenizer, out)
    reload_diff = _reload_difference(model, out, dev_ids[:64], pad_id)
    metrics = {
        "heads_fraction": heads_fraction,
        "ffn_fraction": ffn_fraction,
        "importance": spec.importance,
        "removed_heads": {str(k): v for k, v in heads.items()},
        "before": before,
        "after": after,
        **shrink,
        "uniform_ffn": len(set(after["ffn"])) == 1,
        # what rebuilds these shapes: plain from_pretrained, or compress's loader (per-layer widths,
        # or heads the family's transformers code cannot prune); the model card says which
        "loads_with": (
            "compress.load_pretrained"
            if getattr(model.config, "compress_intermediate_sizes", None)
            else "transformers.from_pretrained"
        ),
        "reload_max_abs_logit_diff": reload_diff,
        "recovery": recovery,
    }
    if reload_diff > RELOAD_TOLERANCE:
        raise StageFailed(
            f"prune: the saved checkpoint reloads to different logits (max |Δ| {reload_diff:.2e})", metrics
        )
    return StageResult(artifacts=[NewArtifact("checkpoint", "torch", "fp32", "checkpoint")], metrics=metrics)


def _importance(ctx: StageContext[PruneSpec], model, dev_ids: list[list[int]], pad_id: int, device: str):
    """(head scores per layer, FFN neuron scores per layer): gradients on dev rows, or weight norms."""
    spec, dev = ctx.spec, ctx.splits.dev
    if spec.importance != "gradient":
        return pruning.magnitude_importance(model)
    rows = min(spec.importance_rows, len(dev_ids))
    batches = pruning.importance_batches(dev_ids[:rows], dev.labels[:rows], pad_id, device)
    with ctx.progress.bar("score heads and neurons", 1) as advance:
        scores = pruning.gradient_importance(model, batches)
        advance()
    return scores


def _recover(
    ctx: StageContext[PruneSpec], spec: RecoverySpec, model, teacher_path, tokenizer, dev_ids: list[list[int]]
) -> dict:
    """Distil the fine-tuned teacher into the pruned model on (a seeded sample of) the train rows."""
    teacher = load_classifier(teacher_path)
    train, dev = ctx.splits.train, ctx.splits.dev
    idx = list(range(len(train.texts)))
    if spec.train_rows is not None and spec.train_rows < len(idx):
        idx = sorted(random.Random(spec.seed).sample(idx, spec.train_rows))
    settings = spec
    if "amp" not in spec.model_fields_set and ctx.recipe.finetune is not None:
        settings = spec.model_copy(update={"amp": ctx.recipe.finetune.amp})  # same AMP as fine-tune
    return train_classifier(
        model,
        settings=settings,
        train_ids=tokenize(tokenizer, [train.texts[i] for i in idx], ctx.recipe.data.max_length),
        train_labels=[train.labels[i] for i in idx],
        dev_ids=dev_ids,
        dev_labels=dev.labels,
        pad_id=tokenizer.pad_token_id or 0,
        progress=ctx.progress,
        label="recover (distil)",
        loss_fn=DistillationLoss(teacher, spec.temperature, spec.distill_weight),
    )


def _check_shrink(before: dict, after: dict, n_remove: int, ffn_fraction: float, spec: PruneSpec) -> dict:
    """Reductions achieved; StageFailed if the physical model is not as small as asked."""
    heads_removed = sum(before["heads"]) - sum(after["heads"])
    ffn_removed = sum(before["ffn"]) - sum(after["ffn"])
    ffn_asked = (
        round(ffn_fraction * before["ffn"][0]) * len(before["ffn"])
        if spec.uniform_ffn
        else round(ffn_fraction * sum(before["ffn"]))
    )
    macs_drop = 1 - after["encoder_macs"] / before["encoder_macs"]
    result = {
        "heads_removed": heads_removed,
        "ffn_neurons_removed": ffn_removed,
        "encoder_macs_reduction": round(macs_drop, 6),
        "encoder_parameters_reduction": round(
            1 - after["parameters"]["encoder"] / before["parameters"]["encoder"], 6
        ),
        "total_parameters_reduction": round(
            1 - after["parameters"]["total"] / before["parameters"]["total"], 6
        ),
    }
    problems = []
    if heads_removed != n_remove:
        problems.append(f"removed {heads_removed} heads, asked {n_remove}")
    if ffn_removed != ffn_asked:
        problems.append(f"removed {ffn_removed} FFN neurons, asked {ffn_asked}")
    if spec.target_macs_fraction is not None and macs_drop < spec.target_macs_fraction:
        problems.append(f"encoder MACs fell {macs_drop:.1%}, asked {spec.target_macs_fraction:.1%}")
    if after["parameters"]["encoder"] >= before["parameters"]["encoder"]:
        problems.append("encoder parameters did not drop")
    if problems:
        raise StageFailed("prune: " + "; ".join(problems), result)
    return result


def _reload_difference(model, folder, ids: list[list[int]], pad_id: int) -> float:
    """Max |Δlogit| between the in-memory model and the checkpoint loaded back from disk."""
    reloaded = load_classifier(folder)
    batch = {
        k: torch.from_numpy(v) for k, v in only_inputs(pad_batch(ids, pad_id), forward_inputs(model)).items()
    }
    with torch.inference_mode():
        return float((model(**batch).logits - reloaded(**batch).logits).abs().max())
