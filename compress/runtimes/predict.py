"""Classify a few texts with any target folder of a bundle, for `compress predict`.

The folder's runtime is read from its files, and the texts go through the same tokenizer, padding
and `RUNTIMES` predictor the evaluator gates with, truncated at the same max length (the bundle's
`data.max_length`), so what this prints is what the gates measured. Anything that is not a
runnable target is a CompressError naming the folder or file (exit 2), never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compress.core.errors import CompressError
from compress.recipe.schema import Shape

MODEL_FILES = "model.safetensors, model.pt2, model.onnx or model.engine"
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")  # save_pretrained writes both


@dataclass(frozen=True)
class Prediction:
    """One text's answer: the most probable label, its probability, and every label's."""

    text: str
    label: str
    score: float
    scores: dict[str, float]


def runtime_of(folder: Path) -> str:
    """ "torch", "onnxruntime" or "tensorrt", from the files a stage writes into each kind of target
    (a tensorrt folder also holds its ONNX graph, so engine.json decides first)."""
    if not folder.exists():
        raise CompressError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise CompressError(f"{folder}: not a folder (give a bundle's targets/<name> folder)")
    if not (folder / "config.json").is_file():
        raise CompressError(f"{folder}: not a target folder (no config.json)")
    if (folder / "engine.json").is_file() or (folder / "model.engine").is_file():
        return "tensorrt"
    if (folder / "model.onnx").is_file():
        return "onnxruntime"
    if any(folder.glob("*.safetensors")) or (folder / "model.pt2").is_file():
        return "torch"
    raise CompressError(f"{folder}: not a target folder (no model file: {MODEL_FILES})")


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CompressError(f"{path}: not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CompressError(f"{path}: not a model config (a JSON object)")
    return config


def label_names(config: dict, path: Path) -> dict[int, str]:
    """Class id -> name from config.json's id2label. transformers leaves id2label out of a saved
    config when the names are its defaults, so an absent one means LABEL_<i>."""
    id2label = config.get("id2label") or {}
    try:
        return {int(k): str(v) for k, v in id2label.items()}
    except (AttributeError, TypeError, ValueError):
        raise CompressError(f"{path}: id2label is not a map of class ids to names") from None


def bundle_max_length(folder: Path) -> int | None:
    """The recipe's data.max_length when `folder` is a bundle's targets/<name>: the length the
    model was trained, exported and gated at. None for a loose folder."""
    folder = folder.resolve()
    manifest = folder.parent.parent / "manifest.json"
    if folder.parent.name != "targets" or not manifest.is_file():
        return None
    try:
        value = json.loads(manifest.read_text())["data"]["spec"]["max_length"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and value > 1 else None


def _model_max_length(tokenizer, config: dict) -> int:
    """What the model itself accepts: the position table, or the tokenizer's limit if smaller
    (transformers puts a huge sentinel there when none is known)."""
    limits = [config.get("max_position_embeddings"), getattr(tokenizer, "model_max_length", None)]
    known = [n for n in limits if isinstance(n, int) and 1 < n < 1_000_000]
    return min(known, default=512)


def _engine_profile(folder: Path) -> tuple[Shape, Shape]:
    """The smallest and largest batch x sequence the engine was built for (engine.json); an
    engine cannot run outside that range."""
    from compress.runtimes import tensorrt_engine

    reason = tensorrt_engine.unavailable()
    if reason is not None:
        raise CompressError(f"{folder}: a TensorRT target, which cannot run on this machine: {reason}")
    if not (folder / "model.engine").is_file():
        raise CompressError(
            f"{folder}: a TensorRT target without a built engine (no model.engine; "
            f"`compress engine {folder}` builds one)"
        )
    try:
        profile = json.loads((folder / "engine.json").read_text())["profile"]
        return Shape.parse(profile["min"]), Shape.parse(profile["max"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return Shape(1, 1), Shape(1, 1_000_000)  # no record: let the engine say what it takes


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities, in float64 so that an FP16 graph's logits do not overflow."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def predict_texts(
    folder: Path, texts: list[str], *, pair: str | None = None, max_length: int | None = None
) -> list[Prediction]:
    """Each text's label and probabilities from the model in `folder`; `pair` is the second
    segment of a sentence-pair input, the same for every text. `max_length` defaults to the
    bundle's, else to what the model accepts."""
    from compress.data.batches import pad_batch
    from compress.models.loading import load_tokenizer
    from compress.runtimes import RUNTIMES

    runtime = runtime_of(folder)
    config = _config(folder)
    names = label_names(config, folder / "config.json")
    smallest, largest = Shape(1, 1), Shape(1, 1_000_000)
    if runtime == "tensorrt":
        smallest, largest = _engine_profile(folder)
    try:
        predict = RUNTIMES[runtime](folder)
    except CompressError:
        raise
    except Exception as exc:
        raise CompressError(f"{folder}: cannot load its {runtime} model: {_first_line(exc)}") from None
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise CompressError(f"{folder}: no tokenizer ({' or '.join(TOKENIZER_FILES)})")
    try:
        tokenizer = load_tokenizer(folder)
    except Exception as exc:  # transformers raises many kinds for a missing or broken tokenizer
        raise CompressError(f"{folder}: cannot load its tokenizer: {_first_line(exc)}") from None
    length = max_length or bundle_max_length(folder) or _model_max_length(tokenizer, config)
    length = min(length, largest.sequence)

    pairs = [pair] * len(texts) if pair is not None else None
    try:
        encoded = tokenizer(texts, pairs, truncation=True, max_length=length, padding=False)
    except Exception as exc:  # e.g. a max length too short for a pair's special tokens
        raise CompressError(f"cannot tokenize the texts at max length {length}: {_first_line(exc)}") from None
    ids, types = encoded["input_ids"], encoded.get("token_type_ids")
    pad_id = tokenizer.pad_token_id or 0
    logits = []
    for i, row in enumerate(ids):
        # one text per batch, unpadded: dynamic INT8 quantizes activations over the whole batch, so
        # batch-mates and padding would change a text's answer (an engine's smallest batch repeats it)
        batch = pad_batch(
            [row] * smallest.batch,
            pad_id,
            width=max(smallest.sequence, len(row)),
            token_types=[types[i]] * smallest.batch if types is not None else None,
        )
        try:
            out = np.asarray(predict(batch))
        except Exception as exc:
            raise CompressError(f"{folder}: the {runtime} model failed to run: {_first_line(exc)}") from None
        if out.ndim != 2 or out.shape[0] != smallest.batch:
            raise CompressError(f"{folder}: the model answered logits of shape {out.shape}, not one row")
        logits.append(out[0])
    probabilities = softmax(np.stack(logits))
    results = []
    for text, row in zip(texts, probabilities, strict=True):
        scores = {names.get(i, f"LABEL_{i}"): float(p) for i, p in enumerate(row)}
        best = int(row.argmax())
        results.append(Prediction(text, names.get(best, f"LABEL_{best}"), float(row[best]), scores))
    return results
