"""compress: a staged, gated model-compression and export pipeline for transformer classifiers."""

import logging

__version__ = "0.1.0"

# Import-time chatter from torchao (pulled in by neural-compressor) and torch's pytree registry:
# warnings about optional CUDA kernels that a user of this tool can neither act on nor avoid.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)


def load_pretrained(path):
    """A compress checkpoint folder (a bundle's torch target, a stage's output) as a transformers
    sequence classifier in eval mode. Use it where plain `from_pretrained` cannot rebuild the
    shapes: pruned per-layer FFN widths, or heads pruned in a family whose transformers code has no
    `pruned_heads` (MPNet, DeBERTa-v2, ModernBERT). Safetensors only; never remote code."""
    from pathlib import Path

    from compress.models.loading import load_classifier

    return load_classifier(Path(path))
