"""compress: a staged, gated model-compression and export pipeline for transformer classifiers."""

import logging

__version__ = "0.1.0"

# Import-time chatter from torchao (pulled in by neural-compressor) and torch's pytree registry:
# warnings about optional CUDA kernels that a user of this tool can neither act on nor avoid.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)
