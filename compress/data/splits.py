"""Text-classification data: read TSV/CSV/JSONL splits, check columns and labels.

Labels are integers 0..n-1 in the file unless `label_names` is given, in which case the file holds
those names and the model's label i is `label_names[i]`.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from compress.data.batches import Text
from compress.recipe.schema import DataSpec, PoolSpec

MAX_FIELD = 1_000_000
# Splits are read into memory whole. 2 GB of text is far beyond a fine-tuning set for a BERT-class
# classifier and near what a CI machine's memory holds; a bigger file is a mistake, not a data set.
MAX_FILE_BYTES = 2_000_000_000


@dataclass(frozen=True)
class Split:
    """One split's rows: texts, integer labels, and each row's line in its file (for messages)."""

    texts: list[Text]  # a string per row, or a (text, pair) tuple with data.text_pair_column
    labels: list[int]
    lines: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Splits:
    """The three splits of a recipe: train fits, dev selects and calibrates, test is judged."""

    train: Split
    dev: Split
    test: Split


class DataError(ValueError):
    """A problem with one data file, with the file and row it concerns already in the message.

    `key` names the [data] key at fault when it is not the file itself (e.g. label_column).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def file_format(spec: DataSpec, path: Path) -> str:
    """The recipe's `format`, or the one the file's suffix names (tsv when it names none)."""
    if spec.format:
        return spec.format
    suffix = path.suffix.lower().lstrip(".")
    return {"tsv": "tsv", "csv": "csv", "jsonl": "jsonl", "json": "jsonl"}.get(suffix, "tsv")


def _read_rows(spec: DataSpec, path: Path) -> list[tuple[int, Text, str]]:
    """(line number, text or text pair, raw label) for every data row of a file."""
    fmt = file_format(spec, path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(f"{path}: {size:,} bytes; a data file may be at most {MAX_FILE_BYTES:,}")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rows: list[tuple[int, Text, str]] = []
    pair = spec.text_pair_column
    if fmt == "jsonl":
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {n}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}: line {n}: expected a JSON object")
            for col in (spec.text_column, spec.label_column, *([pair] if pair is not None else [])):
                if str(col) not in obj:
                    raise DataError(f"{path}: line {n}: no key '{col}' (keys: {', '.join(map(str, obj))})")
            text: Text = str(obj[str(spec.text_column)])
            if pair is not None:
                text = (str(text), str(obj[str(pair)]))
            rows.append((n, text, str(obj[str(spec.label_column)])))
        return rows
    if fmt == "tsv":
        reader = csv.reader(raw.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(raw.splitlines(), delimiter=",", quoting=csv.QUOTE_MINIMAL)
    text_idx, label_idx, pair_idx = spec.text_column, spec.label_column, pair
    start = 1
    if spec.header:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file (expected a header line)")
        text_idx = _column_index(path, header, spec.text_column, "text_column")
        label_idx = _column_index(path, header, spec.label_column, "label_column")
        if pair is not None:
            pair_idx = _column_index(path, header, pair, "text_pair_column")
        start = 2
    elif not all(isinstance(i, int) for i in (text_idx, label_idx, *([pair] if pair is not None else []))):
        raise DataError(
            f"{path}: header = false, so text_column, label_column and text_pair_column must be numbers"
        )
    assert isinstance(text_idx, int) and isinstance(label_idx, int)  # resolved above
    needed = max(text_idx, label_idx, pair_idx if isinstance(pair_idx, int) else 0)
    for n, row in enumerate(reader, start=start):
        if not row:
            continue
        if needed >= len(row):
            raise DataError(f"{path}: line {n}: {len(row)} columns, need column {needed}")
        text = row[text_idx] if not isinstance(pair_idx, int) else (row[text_idx], row[pair_idx])
        rows.append((n, text, row[label_idx].strip()))
    return rows


def _column_index(path: Path, header: list[str], column: str | int, key: str) -> int:
    if isinstance(column, int):
        if column >= len(header):
            raise DataError(f"{path}: {key} = {column} but the file has {len(header)} columns", key)
        return column
    if column not in header:
        raise DataError(f"{path}: {key} '{column}' is not a column (columns: {', '.join(header)})", key)
    return header.index(column)


def _to_label(spec: DataSpec, path: Path, line: int, raw: str) -> int:
    if spec.label_names is not None:
        if raw not in spec.label_names:
            raise DataError(
                f"{path}: line {line}: label '{raw}' is not in label_names ({', '.join(spec.label_names)})",
                "label_names",
            )
        return spec.label_names.index(raw)
    try:
        value = int(raw)
    except ValueError:
        raise DataError(
            f"{path}: line {line}: label '{raw[:40]}' is not an integer; give label_names "
            "in [data] when labels are strings",
            "label_names",
        ) from None
    if value < 0:
        raise DataError(f"{path}: line {line}: label {value} is negative")
    return value


def read_split(spec: DataSpec, path: Path) -> Split:
    """Every row of one file; DataError naming the file and line of the first bad row."""
    rows = _read_rows(spec, path)
    if not rows:
        raise DataError(f"{path}: no data rows")
    texts, labels, lines = [], [], []
    for line, text, raw in rows:
        if any(len(part) > MAX_FIELD for part in ((text,) if isinstance(text, str) else text)):
            raise DataError(f"{path}: line {line}: text longer than {MAX_FIELD} characters")
        texts.append(text)
        labels.append(_to_label(spec, path, line, raw))
        lines.append(line)
    return Split(texts, labels, lines)


def num_labels(spec: DataSpec, train: Split) -> int:
    """How many classes the model predicts: the label names, or the largest train label + 1."""
    if spec.label_names is not None:
        return len(spec.label_names)
    return max(2, max(train.labels) + 1)


def check_data_files(spec: DataSpec) -> list[tuple[str, str]]:
    """Read every split once; return (key, message) problems instead of raising, for validation."""
    problems: list[tuple[str, str]] = []
    splits = {}
    for key in ("train", "dev", "test"):
        try:
            splits[key] = read_split(spec, getattr(spec, key))
        except DataError as exc:
            if exc.key is None or exc.key not in dict(problems):  # a bad column: say it once
                problems.append((exc.key or key, str(exc)))
    if "train" in splits and not problems:
        train = splits["train"]
        n = num_labels(spec, train)
        if len(set(train.labels)) < 2:
            problems.append(("train", f"{spec.train}: every row has the same label"))
        elif spec.label_names is None and len(set(train.labels)) < n:
            unused = sorted(set(range(n)) - set(train.labels))
            first_gap = unused[0]
            row = next(i for i, y in enumerate(train.labels) if y > first_gap)
            problems.append(
                (
                    "train",
                    f"{spec.train}: line {train.lines[row]}: label {train.labels[row]} leaves labels "
                    f"{unused} unused: integer labels must be 0..n-1 (or give label_names)",
                )
            )
        for key in ("dev", "test"):
            split = splits[key]
            outside = [i for i, y in enumerate(split.labels) if y >= n]
            if outside:
                values = sorted({split.labels[i] for i in outside})
                problems.append(
                    (
                        key,
                        f"{getattr(spec, key)}: line {split.lines[outside[0]]}: labels {values} never "
                        f"occur in train (0..{n - 1})",
                    )
                )
    return problems


def _sample(n: int, limit: int | None, seed: int) -> list[int]:
    """The rows a `*_rows` limit keeps: a seeded sample, in file order (all rows without a limit)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def load_pool(spec: DataSpec, pool: PoolSpec) -> Split:
    """The pool's rows in a seeded random order (a prefix is a random sample), at most `max_rows`:
    a file read like the splits, or the train rows `train_rows` left out."""
    if pool.file is not None:
        split = read_split(spec, pool.file)
        order = list(range(len(split.texts)))
    else:
        split = read_split(spec, spec.train)
        used = set(_sample(len(split.texts), spec.train_rows, spec.seed))
        order = [i for i in range(len(split.texts)) if i not in used]
    random.Random(spec.seed + 1).shuffle(order)
    order = order[: pool.max_rows]
    return Split(
        [split.texts[i] for i in order], [split.labels[i] for i in order], [split.lines[i] for i in order]
    )


def load_splits(spec: DataSpec) -> Splits:
    """The three splits, each cut to its `*_rows` limit by a seeded sample (same rows every run)."""
    out: dict[str, Split] = {}
    for key in ("train", "dev", "test"):
        split = read_split(spec, getattr(spec, key))
        limit = getattr(spec, f"{key}_rows")
        if limit is not None and limit < len(split.texts):
            idx = _sample(len(split.texts), limit, spec.seed)
            split = Split(
                [split.texts[i] for i in idx], [split.labels[i] for i in idx], [split.lines[i] for i in idx]
            )
        out[key] = split
    return Splits(**out)
