"""`compress verify BUNDLE`: is this bundle exactly what compress wrote, and does each model run?

Checks, in order, stopping at the first bad file: the manifest parses, is byte for byte in the
layout compress writes and matches its own content hash; every file it lists exists with that
size and sha256; no file is there that it does not list; every ONNX model loads and answers one
batch with one row of logits.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from compress.core.hashing import file_sha256, json_sha256
from compress.core.records import READABLE_SCHEMAS, Manifest
from compress.output.bundle import manifest_text


class BundleInvalid(Exception):
    """The first problem found, naming the file."""

    def __init__(self, file: str, problem: str):
        super().__init__(f"{file}: {problem}")
        self.file = file


def check_manifest(bundle: Path) -> Manifest:
    """The manifest, read into records after checking its seal and its byte layout."""
    path = bundle / "manifest.json"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleInvalid("manifest.json", f"cannot be read ({exc.strerror or exc})") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleInvalid("manifest.json", f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("integrity"), dict):
        raise BundleInvalid("manifest.json", "no integrity record (not written by this version of compress?)")
    body = {k: v for k, v in manifest.items() if k != "integrity"}
    if manifest["integrity"].get("sha256") != json_sha256(body):
        raise BundleInvalid("manifest.json", "content does not match its recorded sha256 (edited or corrupt)")
    if manifest_text(body).encode() != raw:
        raise BundleInvalid("manifest.json", "bytes differ from the layout compress wrote (edited)")
    if body.get("schema") not in READABLE_SCHEMAS:
        raise BundleInvalid(
            "manifest.json", f"schema {body.get('schema')!r}: this version reads {READABLE_SCHEMAS}"
        )
    try:
        return Manifest.from_json(body)
    except ValidationError as exc:
        raise BundleInvalid(
            "manifest.json", f"not a manifest this version can read: {exc.errors()[0]['msg']}"
        ) from None


def check_files(bundle: Path, manifest: Manifest) -> int:
    """Every listed file is there with its size and sha256, and nothing else is; how many."""
    listed = {}
    for entry in manifest.files:
        rel = entry.path
        path = bundle / rel
        if not path.is_file():
            raise BundleInvalid(rel, "listed in the manifest but missing")
        if path.stat().st_size != entry.bytes:
            raise BundleInvalid(rel, f"{path.stat().st_size} bytes, the manifest says {entry.bytes}")
        if file_sha256(path) != entry.sha256:
            raise BundleInvalid(rel, "sha256 differs from the manifest (modified or corrupt)")
        listed[rel] = entry
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle).as_posix()
        if path.is_file() and rel != "manifest.json" and rel not in listed:
            raise BundleInvalid(rel, "not listed in the manifest (added after the bundle was written)")
    return len(listed)


def check_models_run(bundle: Path, manifest: Manifest) -> list[str]:
    """Load every ONNX file and run one padded batch of two short sentences through it."""
    import numpy as np

    from compress.data.batches import pad_batch, tokenize
    from compress.models.loading import load_tokenizer
    from compress.runtimes import onnxruntime_predictor

    checked = []
    for entry in manifest.files:
        rel = entry.path
        if not rel.endswith(".onnx"):
            continue
        folder = (bundle / rel).parent
        try:
            predict = onnxruntime_predictor(folder)
            tokenizer = load_tokenizer(folder)
            ids = tokenize(tokenizer, ["a fine film .", "dull"], 16)
            logits = predict(pad_batch(ids, tokenizer.pad_token_id or 0))
        except Exception as exc:  # any failure to load or run is the finding itself
            raise BundleInvalid(rel, f"does not load and run: {str(exc).splitlines()[0][:200]}") from None
        if logits.ndim != 2 or logits.shape[0] != 2 or not np.isfinite(logits).all():
            raise BundleInvalid(rel, f"answered logits of shape {logits.shape} (or non-finite) for 2 rows")
        checked.append(rel)
    return checked


def verify_bundle(bundle: Path) -> dict:
    """Raise BundleInvalid at the first bad file; return a summary when everything holds."""
    if not bundle.is_dir():
        raise BundleInvalid(str(bundle), "not a bundle folder")
    bundle = bundle.resolve()
    manifest = check_manifest(bundle)
    files = check_files(bundle, manifest)
    models = check_models_run(bundle, manifest)
    return {"files": files, "models_run": models, "run_id": manifest.run_id}
