"""Token ids and padded batches: what every runtime is fed."""

from __future__ import annotations

import numpy as np


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids without padding; batches are padded later to their own longest row."""
    return tokenizer(texts, truncation=True, max_length=max_length, padding=False)["input_ids"]


def pad_batch(
    ids: list[list[int]],
    pad_id: int,
    width: int | None = None,
    token_types: list[list[int]] | None = None,
) -> dict:
    """Numpy int64 arrays padded to the batch's longest row, or to `width` (what both runtimes
    consume). `token_types` marks a sentence pair's second segment; all 0 (one segment) without."""
    width = width or max(len(r) for r in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    types = np.zeros_like(input_ids)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
        if token_types is not None:
            types[i, : len(row)] = token_types[i]
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
