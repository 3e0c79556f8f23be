"""The one place that talks to transformers: build, load and save sequence classifiers.

Kept behind this module so a transformers upgrade (4.x -> 5.x changes loading and head-pruning
APIs) is a local change. Checkpoints load from safetensors only and never run remote code.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from compress.core.errors import CompressError
from compress.models.hub import resolve_hub
from compress.models.packaged import packaged_model_dir
from compress.recipe.schema import ModelSpec

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded at run time
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # e.g. "newly initialized head": expected here


def load_tokenizer(folder: Path):
    """The tokenizer saved beside a checkpoint or ONNX graph (never remote code)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)


def checkpoint_folder(spec: ModelSpec) -> Path:
    """The folder a packaged, local or hub starting model loads from (a hub model's cached snapshot
    at the commit `spec.revision` names now); not for a tiny model, which has none."""
    if spec.hub is not None:
        return resolve_hub(spec.hub, spec.revision).folder
    if spec.path is not None:
        return spec.path
    return packaged_model_dir(str(spec.packaged))


def build_source_model(
    spec: ModelSpec, num_labels: int, out: Path, label_names: list[str] | None = None
) -> None:
    """Write the starting checkpoint (weights + config + tokenizer) into `out`.

    A packaged, local or hub model gets a fresh classification head of `num_labels`; a tiny model
    is built from a config of its family with random weights and borrows the packaged MiniLM
    tokenizer. Both are seeded by `model.seed`, so a fresh cache rebuilds the same starting point.
    With `label_names` the config's id2label/label2id name the classes, and every artifact made
    from it carries them.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from compress.models.tiny import tiny_config

    torch.manual_seed(spec.seed)  # the new head's init decides a point of accuracy on SST-2: seed it
    names: dict = {}
    if label_names is not None:
        names = {
            "id2label": dict(enumerate(label_names)),
            "label2id": {n: i for i, n in enumerate(label_names)},
        }
    if spec.tiny is not None:
        tok_dir = packaged_model_dir("all-MiniLM-L6-v2")
        tokenizer = load_tokenizer(tok_dir)
        config = tiny_config(
            spec.tiny.family,
            vocab_size=tokenizer.vocab_size,
            hidden_size=spec.tiny.hidden_size,
            num_hidden_layers=spec.tiny.num_hidden_layers,
            num_attention_heads=spec.tiny.num_attention_heads,
            intermediate_size=spec.tiny.intermediate_size,
            dropout=spec.tiny.dropout,
            num_labels=num_labels,
            pad_token_id=tokenizer.pad_token_id or 0,
            **names,
        )
        model = AutoModelForSequenceClassification.from_config(config)
    else:
        src = checkpoint_folder(spec)
        try:
            tokenizer = load_tokenizer(src)
            model = AutoModelForSequenceClassification.from_pretrained(
                src,
                num_labels=num_labels,
                **names,
                ignore_mismatched_sizes=True,  # a new head when the label count differs
                use_safetensors=True,
                trust_remote_code=False,
            )
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise CompressError(f"model: cannot load checkpoint {src}: {exc}") from None
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def load_classifier(folder: Path):
    """A saved checkpoint in eval mode; a corrupt or foreign folder is a CompressError.

    Checkpoints whose FFN widths differ per layer (non-uniform pruning, recorded as
    `compress_intermediate_sizes` in config.json) cannot be rebuilt by plain transformers, which
    would raise a size mismatch; they are built here with those widths and loaded strictly.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        sizes = getattr(config, "compress_intermediate_sizes", None)
        if not sizes:
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, use_safetensors=True, trust_remote_code=False
            )
        else:
            from safetensors.torch import load_file

            from compress.models.pruning import apply_ffn_sizes

            model = AutoModelForSequenceClassification.from_config(config)
            apply_ffn_sizes(model, sizes)
            state = {}
            for f in sorted(Path(folder).glob("*.safetensors")):
                state.update(load_file(f))
            model.load_state_dict(state, strict=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise CompressError(f"cannot load checkpoint {folder}: {exc}") from None
    return model.eval()


def forward_inputs(model) -> frozenset[str]:
    """The input names the model's forward takes. Batches carry input_ids, attention_mask and
    token_type_ids; DistilBERT and MPNet take no token_type_ids (a TypeError if given), so every
    torch call site feeds only these (`only_inputs`). A wrapper (DDP) is looked through. Read
    once per model class: training and distillation ask on every step."""
    return _forward_parameters(getattr(model, "module", model).__class__)


@functools.cache
def _forward_parameters(cls: Any) -> frozenset[str]:
    import inspect

    return frozenset(inspect.signature(cls.forward).parameters) - {"self"}


def only_inputs(batch: dict, names: frozenset[str]) -> dict:
    """`batch` without the inputs a model does not take."""
    return {k: v for k, v in batch.items() if k in names}


def save_classifier(model, tokenizer, out: Path) -> None:
    """Weights as safetensors, config and tokenizer: a folder `load_classifier` and plain
    transformers read back."""
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
