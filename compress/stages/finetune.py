"""Fine-tune the classifier with mixed precision; keep the best checkpoint by dev accuracy."""

from __future__ import annotations

from compress.core.artifact import NewArtifact
from compress.core.stage import StageContext, StageResult
from compress.data.batches import tokenize
from compress.models import distributed
from compress.models.loading import load_classifier, load_tokenizer, save_classifier
from compress.models.training import train_classifier
from compress.recipe.schema import FinetuneSpec, Recipe


def reads(recipe: Recipe) -> dict:
    """How many processes train: their dropout masks differ, so the weights do too."""
    return {"processes": distributed.current().size}


def run(ctx: StageContext[FinetuneSpec]) -> StageResult:
    """Train the starting checkpoint on the train split, choosing the best step on dev."""
    source = ctx.inputs["checkpoint"]
    tokenizer = load_tokenizer(source.path)
    model = load_classifier(source.path)
    max_length = ctx.recipe.data.max_length
    train, dev = ctx.splits.train, ctx.splits.dev
    metrics = train_classifier(
        model,
        settings=ctx.spec,
        train_ids=tokenize(tokenizer, train.texts, max_length),
        train_labels=train.labels,
        dev_ids=tokenize(tokenizer, dev.texts, max_length),
        dev_labels=dev.labels,
        pad_id=tokenizer.pad_token_id or 0,
        progress=ctx.progress,
        label="fine-tune",
    )
    save_classifier(model.float().cpu(), tokenizer, ctx.out_dir / "checkpoint")
    return StageResult(artifacts=[NewArtifact("checkpoint", "torch", "fp32", "checkpoint")], metrics=metrics)
