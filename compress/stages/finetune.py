"""Fine-tune the classifier with mixed precision; keep the best checkpoint by dev accuracy."""

from __future__ import annotations

from compress import distributed
from compress.data import tokenize
from compress.modeling import load_classifier, load_tokenizer, save_classifier
from compress.stages import NewArtifact, StageContext, StageResult
from compress.training import train_classifier


def reads(recipe) -> dict:
    """How many processes train: their dropout masks differ, so the weights do too."""
    return {"processes": distributed.current().size}


def run(ctx: StageContext) -> StageResult:
    source = ctx.inputs["checkpoint"]
    tokenizer = load_tokenizer(source.path)
    model = load_classifier(source.path)
    max_length = ctx.recipe.data.max_length
    train, dev = ctx.splits["train"], ctx.splits["dev"]
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
