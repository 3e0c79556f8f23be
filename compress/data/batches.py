"""Token ids and padded batches: what every runtime is fed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Text = str | tuple[str, str]  # one text, or a sentence pair (recipes with data.text_pair_column)


class TokenRow(list):
    """One row's token ids. A sentence pair also carries its token type ids (`types`), so every
    place that picks, sorts and batches rows keeps them without knowing about pairs."""

    types: list[int] | None = None


def tokenize(tokenizer, texts: Sequence[Text], max_length: int) -> list[list[int]]:
    """Token ids without padding; batches are padded later to their own longest row. Pairs are
    tokenized together, truncated longest-first, as the model reads them (BERT: [CLS] a [SEP] b [SEP])."""
    if not texts or isinstance(texts[0], str):
        return tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)["input_ids"]
    firsts = [t[0] for t in texts]
    seconds = [t[1] for t in texts]
    encoded = tokenizer(
        firsts,
        seconds,
        truncation="longest_first",
        max_length=max_length,
        padding=False,
        return_token_type_ids=True,
    )
    rows: list[list[int]] = []
    for ids, types in zip(encoded["input_ids"], encoded["token_type_ids"], strict=True):
        row = TokenRow(ids)
        row.types = list(types)
        rows.append(row)
    return rows


def pad_batch(
    ids: list[list[int]],
    pad_id: int,
    width: int | None = None,
    token_types: list[list[int]] | None = None,
) -> dict:
    """Numpy int64 arrays padded to the batch's longest row, or to `width` (what both runtimes
    consume). Token types mark a sentence pair's second segment: `token_types`, else the rows' own
    (`TokenRow.types`); all 0 (one segment) without. Rows longer than `width` are cut."""
    width = width or max(len(r) for r in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    types = np.zeros_like(input_ids)
    for i, row in enumerate(ids):
        n = min(len(row), width)
        input_ids[i, :n] = row[:n]
        mask[i, :n] = 1
        row_types = token_types[i] if token_types is not None else getattr(row, "types", None)
        if row_types is not None:
            types[i, :n] = row_types[:n]
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
