"""Train a tiny BERT (no dropout, FP32) with compress.training and save its weights: run alone or
under torchrun by tests/test_distributed.py, which compares the two.

usage: train_tiny_job.py OUT.pt PARALLEL ACCUMULATION
"""

import random
import sys

import torch
from transformers import BertConfig, BertForSequenceClassification

from compress.core.progress import Reporter
from compress.models import distributed
from compress.models.training import serve, train_classifier
from compress.recipe.schema import TrainSettings


def main(out: str, parallel: str, accumulation: int) -> None:
    world = distributed.start()
    quiet = Reporter(quiet=True)
    if not world.is_main:
        serve(quiet)
        distributed.finish()
        return
    settings = TrainSettings(
        epochs=2,
        batch_size=10,  # 45 rows: the last batch has 5, shared 3 + 2, some passes empty
        learning_rate=1e-3,
        amp="off",
        evals_per_epoch=2,
        parallel=parallel,
        gradient_accumulation_steps=accumulation,
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    rng = random.Random(1)
    ids = [[1] + [rng.randrange(3, 50) for _ in range(rng.randrange(2, 12))] for _ in range(57)]
    labels = [sum(r) % 2 for r in ids]
    metrics = train_classifier(
        model,
        settings=settings,
        train_ids=ids[:45],
        train_labels=labels[:45],
        dev_ids=ids[45:],
        dev_labels=labels[45:],
        pad_id=0,
        progress=quiet,
        label="tiny",
    )
    torch.save({"state": {k: v.cpu() for k, v in model.state_dict().items()}, "metrics": metrics}, out)
    distributed.finish()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
