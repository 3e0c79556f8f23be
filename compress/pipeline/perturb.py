"""Test hook: a copy of an artifact with seeded Gaussian noise on its floating-point weights.

Regression checks are only worth something if they catch a model that changed. This makes one
change on purpose (`perturb_weights` on a target), the same way for checkpoints and ONNX graphs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


def _noisy(array: np.ndarray, relative_std: float, rng: np.random.Generator) -> np.ndarray:
    """Noise of `relative_std` x the tensor's std (x 1 for a constant tensor such as a fresh
    LayerNorm scale); integer tensors (INT8 weights) are rounded and clipped to their type."""
    scale = float(array.std()) or 1.0
    noisy = array + rng.standard_normal(array.shape) * relative_std * scale
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        noisy = np.clip(np.rint(noisy), info.min, info.max)
    return noisy.astype(array.dtype)


def _is_weight(name: str, array: np.ndarray) -> bool:
    """Float tensors, and integer ones that are quantized weights (not zero points or shapes)."""
    if array.size <= 1:
        return False
    if array.dtype.kind == "f":
        return True
    return array.dtype in (np.int8, np.uint8) and "zero_point" not in name


def perturb_folder(src: Path, dst: Path, relative_std: float, seed: int) -> None:
    """Copy `src` to `dst`, adding noise of `relative_std` x each float tensor's std to every float
    weight tensor in `*.safetensors` and `*.onnx` files (INT8 weights included, in integer units)."""
    rng = np.random.default_rng(seed)
    shutil.copytree(src, dst)
    for path in sorted(dst.rglob("*.safetensors")):
        from safetensors.numpy import load_file, save_file

        tensors = load_file(path)
        save_file(
            {k: _noisy(v, relative_std, rng) if _is_weight(k, v) else v for k, v in tensors.items()},
            path,
            metadata={"format": "pt"},
        )
    for path in sorted(dst.rglob("*.onnx")):
        import onnx
        from onnx import numpy_helper

        model = onnx.load(path)
        for i, init in enumerate(model.graph.initializer):
            array = numpy_helper.to_array(init)
            if _is_weight(init.name, array):
                model.graph.initializer[i].CopyFrom(
                    numpy_helper.from_array(_noisy(array, relative_std, rng), init.name)
                )
        onnx.save(model, path)
