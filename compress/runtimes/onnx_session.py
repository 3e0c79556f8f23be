"""ONNX Runtime: a graph folder as a predictor, on the CPU provider with every core (`cpu_threads`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from compress.core.environment import cpu_threads
from compress.core.errors import CompressError


def predictor(folder: Path, *, spinning: bool = True) -> Callable[[dict], np.ndarray]:
    """`predict(batch) -> logits` through `folder/model.onnx`; inputs the graph does not take are
    dropped. `spinning=False` where several sessions take turns on few cores (benchmarks): a pool
    that spin-waits after its run holds a core the next session needs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_threads()
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
