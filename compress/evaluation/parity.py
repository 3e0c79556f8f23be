"""Does a converted graph compute what its source computes, on any shape?"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

from compress.runtimes import Predict


def dynamic_axes_problems(model_path: Path) -> list[str]:
    """Inputs whose batch or sequence axis is fixed: such a graph breaks on other shapes."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    problems = []
    for inp in graph.input:
        dims = inp.type.tensor_type.shape.dim
        fixed = [i for i, d in enumerate(dims) if not d.dim_param]
        if fixed:
            problems.append(f"input '{inp.name}' has fixed axes {fixed}")
    return problems


def parity(reference: Predict, candidate: Predict, batches: Iterable[dict]) -> dict:
    """Max |Δlogit| and label agreement between two predictors over the same batches."""
    max_diff, agree, rows = 0.0, 0, 0
    for batch in batches:
        ref, cand = reference(batch), candidate(batch)
        max_diff = max(max_diff, float(np.abs(ref - cand).max()))
        agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
        rows += len(ref)
    return {"max_abs_logit_diff": max_diff, "label_agreement": agree / rows, "rows": rows}
