"""Run a model artifact in its own runtime: PyTorch for checkpoints, ONNX Runtime for ONNX graphs,
TensorRT for engines.

Every runtime is a function `folder -> predict(batch) -> logits` over numpy int64 inputs, so the
evaluator, the shape checks and the export parity check treat them alike. One dict, no if/elif
chains over backends.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Predict = Callable[[dict], np.ndarray]


def torch_predictor(folder: Path) -> Predict:
    """A checkpoint folder in PyTorch, in inference mode on the CPU; a folder holding a torch.export
    program (`model.pt2`, the torch_int8 stage's) runs that program instead."""
    if (folder / "model.pt2").is_file():
        from compress.runtimes.torch_program import predictor as program_predictor

        return program_predictor(folder)
    from compress.runtimes.torch_model import predictor

    return predictor(folder)


def onnxruntime_predictor(folder: Path, *, spinning: bool = True) -> Predict:
    """`folder/model.onnx` in an ONNX Runtime CPU session (see runtimes.onnx_session)."""
    from compress.runtimes.onnx_session import predictor

    return predictor(folder, spinning=spinning)


def tensorrt_predictor(folder: Path) -> Predict:
    """The engine where one was built (on its GPU); otherwise the precision-carrying ONNX graph in
    ONNX Runtime on the CPU, which the judge gates as a proxy, never as the engine's result."""
    if (folder / "model.engine").is_file():
        from compress.runtimes.tensorrt_engine import engine_predictor

        return engine_predictor(folder)
    return onnxruntime_predictor(folder)


def memoized(predict: Predict) -> Predict:
    """`predict` that answers each distinct batch once: a reference model asked the same batches by
    every candidate checked against it (the INT8 trials, the release matrix of each artifact)."""
    seen: dict[bytes, np.ndarray] = {}

    def cached(batch: dict) -> np.ndarray:
        key = b"".join(
            name.encode() + bytes(str(value.shape), "ascii") + value.tobytes()
            for name, value in sorted(batch.items())
        )
        if key not in seen:
            seen[key] = predict(batch)
        return seen[key]

    return cached


RUNTIMES: dict[str, Callable[[Path], Predict]] = {
    "torch": torch_predictor,
    "onnxruntime": onnxruntime_predictor,
    "tensorrt": tensorrt_predictor,
}
