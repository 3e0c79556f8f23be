import json

import pytest

from compress.data.batches import pad_batch
from compress.data.splits import DataError, check_data_files, load_splits, read_split
from compress.recipe.schema import DataSpec


def spec(tmp_path, **kw) -> DataSpec:
    defaults = dict(train=tmp_path / "train", dev=tmp_path / "dev", test=tmp_path / "test")
    return DataSpec(**{**defaults, **kw})


def test_tsv_with_header(tmp_path):
    f = tmp_path / "a.tsv"
    f.write_text("sentence\tlabel\ngood film\t1\nbad film\t0\n")
    split = read_split(spec(tmp_path), f)
    assert split.texts == ["good film", "bad film"] and split.labels == [1, 0]


def test_csv_without_header_by_index(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text('0,"a, quoted text"\n1,plain\n')
    split = read_split(spec(tmp_path, header=False, text_column=1, label_column=0), f)
    assert split.texts == ["a, quoted text", "plain"] and split.labels == [0, 1]


def test_jsonl_with_label_names(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text("\n".join(json.dumps({"text": t, "y": y}) for t, y in [("x", "pos"), ("z", "neg")]))
    s = spec(tmp_path, text_column="text", label_column="y", label_names=["neg", "pos"])
    assert read_split(s, f).labels == [1, 0]


@pytest.mark.parametrize(
    "content,needle",
    [
        ("", "empty file"),
        ("sentence\tlabel\n", "no data rows"),
        ("sentence\tlabel\nonly one column\n", "line 2: 1 columns"),
        ("sentence\tlabel\ngood\tpositive\n", "line 2: label 'positive' is not an integer"),
        ("sentence\tlabel\ngood\t-1\n", "line 2: label -1 is negative"),
        ("text\ty\ngood\t1\n", "text_column 'sentence' is not a column"),
    ],
)
def test_bad_files_name_file_and_row(tmp_path, content, needle):
    f = tmp_path / "bad.tsv"
    f.write_text(content)
    with pytest.raises(DataError, match=needle) as info:
        read_split(spec(tmp_path), f)
    assert str(f) in str(info.value)


def test_non_utf8(tmp_path):
    f = tmp_path / "bin.tsv"
    f.write_bytes(b"sentence\tlabel\n\xff\xfe\t1\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_split(spec(tmp_path), f)


def test_check_reports_labels_unseen_in_train_and_single_class(tmp_path):
    for name, body in {"train": "a\t0\nb\t0\n", "dev": "c\t0\n", "test": "d\t3\n"}.items():
        (tmp_path / name).write_text("sentence\tlabel\n" + body)
    found = dict(check_data_files(spec(tmp_path)))
    assert "same label" in found["train"]
    assert "labels [3] never occur in train" in found["test"]


def test_row_limits_are_seeded_samples(tmp_path):
    rows = "".join(f"row {i}\t{i % 2}\n" for i in range(100))
    for name in ("train", "dev", "test"):
        (tmp_path / name).write_text("sentence\tlabel\n" + rows)
    s = spec(tmp_path, train_rows=10, seed=3)
    first, second = load_splits(s), load_splits(s)
    assert len(first.train.texts) == 10 and first.train == second.train
    assert len(first.test.texts) == 100


def test_pad_batch():
    batch = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["token_type_ids"].shape == (2, 3)
