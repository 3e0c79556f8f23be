"""Tiny random checkpoints of every encoder family, built from configs (compress.models.tiny) and
saved the way a user's checkpoint is (`save_pretrained`, safetensors), with the packaged MiniLM
tokenizer (its 30,522-token vocabulary sizes every model's embeddings)."""

from __future__ import annotations

from pathlib import Path

from compress.models.tiny import FAMILIES, tiny_config

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
VOCAB = 30522


def tiny_configs() -> dict:
    """family name -> a tiny config of that family (pad id 0: the BERT tokenizer's)."""
    return {
        family: tiny_config(family, vocab_size=VOCAB, dropout=0.1, num_labels=2, **SMALL)
        for family in FAMILIES
    }


def save_tiny_checkpoint(family: str, folder: Path) -> Path:
    """A random `family` classifier and the MiniLM tokenizer in `folder`, as a user would save them."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from compress.models.packaged import packaged_model_dir

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(tiny_configs()[family])
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(packaged_model_dir("all-MiniLM-L6-v2")).save_pretrained(folder)
    return folder
