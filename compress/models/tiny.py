"""Random-weight models of every encoder family, built from a few sizes: for tests, smoke runs and
recipes that must run in seconds without a checkpoint (`[model] tiny = { family = ... }`)."""

from __future__ import annotations

from typing import Any

from compress.recipe.schema import TINY_FAMILIES as FAMILIES


def tiny_config(
    family: str,
    *,
    vocab_size: int,
    hidden_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    intermediate_size: int,
    dropout: float,
    num_labels: int,
    pad_token_id: int = 0,
    **extra,
):
    """A transformers config of `family` with these sizes. Position tables hold 512 tokens (514 for
    the families that offset positions past the padding id); the pad id is the tokenizer's."""
    import transformers as t

    sizes: dict[str, Any] = {
        "hidden_size": hidden_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "intermediate_size": intermediate_size,
    }
    common: dict[str, Any] = {
        "vocab_size": vocab_size,
        "pad_token_id": pad_token_id,
        "num_labels": num_labels,
        **extra,
    }
    bert_dropout = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    offset = {"max_position_embeddings": 514}  # RoBERTa-style positions start after the pad id
    small_embeddings = {"embedding_size": max(8, hidden_size // 2)}
    if family == "bert":
        return t.BertConfig(**sizes, **common, **bert_dropout, max_position_embeddings=512)
    if family == "roberta":
        return t.RobertaConfig(**sizes, **common, **bert_dropout, **offset)
    if family == "xlm-roberta":
        return t.XLMRobertaConfig(**sizes, **common, **bert_dropout, **offset)
    if family == "camembert":
        return t.CamembertConfig(**sizes, **common, **bert_dropout, **offset)
    if family == "electra":
        return t.ElectraConfig(**sizes, **common, **bert_dropout, **small_embeddings)
    if family == "mpnet":
        return t.MPNetConfig(**sizes, **common, **bert_dropout, **offset)
    if family == "albert":
        return t.AlbertConfig(**sizes, **common, **bert_dropout, **small_embeddings)
    if family == "deberta-v2":
        return t.DebertaV2Config(
            **sizes,
            **common,
            **bert_dropout,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
        )
    if family == "distilbert":
        return t.DistilBertConfig(
            dim=hidden_size,
            n_layers=num_hidden_layers,
            n_heads=num_attention_heads,
            hidden_dim=intermediate_size,
            dropout=dropout,
            attention_dropout=dropout,
            **common,
        )
    if family == "modernbert":
        return t.ModernBertConfig(
            **sizes,
            **common,
            attention_dropout=dropout,
            mlp_dropout=dropout,
            embedding_dropout=dropout,
            global_attn_every_n_layers=2,
            local_attention=16,  # short, so a 128-token recipe reaches past the local window
            max_position_embeddings=512,
        )
    raise ValueError(f"no tiny {family!r} (families: {', '.join(FAMILIES)})")
