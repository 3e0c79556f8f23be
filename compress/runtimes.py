"""Run a model artifact in its own runtime: PyTorch for checkpoints, ONNX Runtime for ONNX.

Every runtime is a function `folder -> predict(batch) -> logits` over numpy int64 inputs, so the
evaluator and the export parity check treat them alike. One dict, no if/elif chains over backends.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

Predict = Callable[[dict], np.ndarray]


def torch_predictor(folder: Path) -> Predict:
    import torch

    from compress.modeling import load_classifier

    model = load_classifier(folder)

    def predict(batch: dict) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v) for k, v in batch.items()}
            return model(**inputs).logits.float().numpy()

    return predict


def onnxruntime_predictor(folder: Path, *, spinning: bool = True) -> Predict:
    """`spinning=False` where several sessions take turns on few cores (benchmarks): a pool that
    spin-waits after its run holds a core the next session needs."""
    import onnxruntime as ort

    from compress.errors import CompressError

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
    except (ort.capi.onnxruntime_pybind11_state.Fail, RuntimeError) as exc:
        raise CompressError(f"cannot load ONNX model {folder / 'model.onnx'}: {exc}") from None
    names = {i.name for i in session.get_inputs()}

    def predict(batch: dict) -> np.ndarray:
        return session.run(["logits"], {k: v for k, v in batch.items() if k in names})[0]

    return predict


def tensorrt_predictor(folder: Path) -> Predict:
    """The engine where one was built (on its GPU); otherwise the precision-carrying ONNX graph in
    ONNX Runtime on the CPU, which the runner gates as a proxy, never as the engine's result."""
    if (folder / "model.engine").is_file():
        from compress.tensorrt import engine_predictor

        return engine_predictor(folder)
    return onnxruntime_predictor(folder)


RUNTIMES: dict[str, Callable[[Path], Predict]] = {
    "torch": torch_predictor,
    "onnxruntime": onnxruntime_predictor,
    "tensorrt": tensorrt_predictor,
}


def versions() -> dict[str, str]:
    """Versions of everything whose change can change a stage's output (part of cache keys)."""
    import onnx
    import onnxruntime
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
