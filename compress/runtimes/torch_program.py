"""PyTorch: a torch.export program (`model.pt2`, e.g. the torch_int8 stage's) as a predictor.

Loaded with `torch.export.load(...).module()` alone: no Neural Compressor, no compiler. PT2E INT8
programs call `quantized_decomposed` ops, which PyTorch registers in `torch.ao.quantization.fx._decomposed`
(imported first, or the load fails). The program takes its inputs positionally, in the order
`program.json` lists them. Where the stage also built AOTInductor's package (`model.aoti.pt2`, a shared
library for its CPU), that is what runs: it loads without a compiler too.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers the quantized_decomposed ops)

from compress.core.errors import CompressError

AOTI = "model.aoti.pt2"


def _module(folder: Path) -> Callable[..., torch.Tensor]:
    """AOTInductor's compiled package where there is one and it loads on this machine; else the portable
    program (a package built for another CPU or torch falls back to it, with a warning)."""
    if (folder / AOTI).is_file():
        try:
            return torch._inductor.aoti_load_package(str(folder / AOTI))
        except (OSError, RuntimeError) as exc:
            warnings.warn(f"{folder / AOTI} does not load here ({exc}); running model.pt2", stacklevel=2)
    return torch.export.load(folder / "model.pt2").module()


def predictor(folder: Path) -> Callable[[dict], np.ndarray]:
    """`predict(batch) -> logits` through `folder`'s compiled package or program, fed the inputs
    `program.json` names."""
    try:
        names = json.loads((folder / "program.json").read_text())["inputs"]
        module = _module(folder)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CompressError(f"cannot load the torch.export program in {folder}: {exc}") from None

    def predict(batch: dict) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.from_numpy(batch[n]) for n in names)).float().numpy()

    return predict
