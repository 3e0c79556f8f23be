"""Sentence pairs (`data.text_pair_column`): read from every format, tokenized together, and fed
with their token types wherever rows are batched."""

import json

import numpy as np
import pytest
import torch

from compress.core.artifact import Artifact
from compress.core.progress import Reporter
from compress.data.batches import pad_batch, tokenize
from compress.data.splits import DataError, Split, read_split
from compress.evaluation.evaluate import predict_labels
from compress.models.loading import load_tokenizer
from compress.models.packaged import packaged_model_dir
from compress.recipe.schema import DataSpec

TOKENIZER = load_tokenizer(packaged_model_dir("all-MiniLM-L6-v2"))


def spec(tmp_path, **fields) -> DataSpec:
    return DataSpec(train=tmp_path / "x", dev=tmp_path / "x", test=tmp_path / "x", **fields)


def test_pairs_from_tsv_csv_and_jsonl(tmp_path):
    (tmp_path / "a.tsv").write_text("premise\thypothesis\tlabel\nA man sleeps.\tA person rests.\t1\n")
    split = read_split(
        spec(tmp_path, text_column="premise", text_pair_column="hypothesis"), tmp_path / "a.tsv"
    )
    assert split.texts == [("A man sleeps.", "A person rests.")] and split.labels == [1]
    (tmp_path / "b.csv").write_text("1,first,second\n")
    by_index = spec(tmp_path, header=False, text_column=1, text_pair_column=2, label_column=0)
    assert read_split(by_index, tmp_path / "b.csv").texts == [("first", "second")]
    (tmp_path / "c.jsonl").write_text(json.dumps({"q": "why", "a": "because", "label": 0}) + "\n")
    jsonl = spec(tmp_path, text_column="q", text_pair_column="a")
    assert read_split(jsonl, tmp_path / "c.jsonl").texts == [("why", "because")]


def test_a_missing_pair_column_names_the_key(tmp_path):
    (tmp_path / "a.tsv").write_text("sentence\tlabel\nx\t1\n")
    with pytest.raises(DataError) as info:
        read_split(spec(tmp_path, text_pair_column="hypothesis"), tmp_path / "a.tsv")
    assert info.value.key == "text_pair_column" and "'hypothesis' is not a column" in str(info.value)


def test_pairs_tokenize_together_with_token_types():
    (row,) = tokenize(TOKENIZER, [("a good film", "truly great")], max_length=32)
    expected = TOKENIZER("a good film", "truly great")
    assert list(row) == expected["input_ids"]
    assert row.types == expected["token_type_ids"] and 1 in row.types
    long = ("word " * 50, "other " * 5)
    (cut,) = tokenize(TOKENIZER, [long], max_length=20)
    assert len(cut) == 20 and cut.types.count(1) == 6, "longest_first keeps the short second text"


def test_batches_keep_each_rows_token_types():
    rows = tokenize(TOKENIZER, [("a", "b c"), ("a b c d", "e")], max_length=16)
    picked = [rows[i] for i in (1, 0)]  # as evaluation sorts and picks rows
    batch = pad_batch(picked, 0)
    for i, row in enumerate(picked):
        assert batch["token_type_ids"][i, : len(row)].tolist() == row.types
        assert batch["token_type_ids"][i, len(row) :].sum() == 0
    single = pad_batch(tokenize(TOKENIZER, ["a b"], 16), 0)
    assert single["token_type_ids"].sum() == 0


def test_evaluation_feeds_pairs_as_the_model_reads_them(tmp_path):
    """The labels evaluation predicts for pairs are the model's on tokenizer(a, b), not on a alone."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=TOKENIZER.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        type_vocab_size=2,
        num_labels=2,
    )
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # make the segment embedding matter
        model.bert.embeddings.token_type_embeddings.weight[1] += 3.0
    model.save_pretrained(tmp_path, safe_serialization=True)
    TOKENIZER.save_pretrained(tmp_path)
    texts = [("a dull film", "a great film"), ("fine", "bad"), ("so so", "yes"), ("no", "no")] * 4
    split = Split(texts, [0] * len(texts), list(range(len(texts))))
    artifact = Artifact(kind="checkpoint", runtime="torch", precision="fp32", path=tmp_path)
    got = predict_labels(
        artifact, split, max_length=32, batch_size=3, progress=Reporter(quiet=True), label="x"
    )
    with torch.no_grad():
        encoded = TOKENIZER([a for a, _ in texts], [b for _, b in texts], padding=True, return_tensors="pt")
        want = model(**encoded).logits.argmax(-1).numpy()
        alone = TOKENIZER([a for a, _ in texts], padding=True, return_tensors="pt")
        logits_alone = model(**alone).logits
    np.testing.assert_array_equal(got, want)
    assert not torch.allclose(logits_alone, model(**encoded).logits)
