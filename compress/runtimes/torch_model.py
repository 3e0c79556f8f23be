"""PyTorch: a checkpoint folder as a predictor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from compress.models.loading import forward_inputs, load_classifier, only_inputs


def predictor(folder: Path) -> Callable[[dict], np.ndarray]:
    """`predict(batch) -> logits` through the checkpoint in `folder`, in inference mode."""
    model = load_classifier(folder)
    names = forward_inputs(model)

    def predict(batch: dict) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v) for k, v in only_inputs(batch, names).items()}
            return model(**inputs).logits.float().numpy()

    return predict
