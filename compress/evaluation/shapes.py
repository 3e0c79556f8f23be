"""Shape matrix: does a model still answer like its reference at every batch x sequence it may see?

Graph optimisation and quantization can break dynamic axes or change results only at some shapes
(a fused attention mask path taken only for long sequences, a kernel chosen by batch size). Rows are
truncated to the sequence length and padded to exactly it, so every shape is exercised as named.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from compress.core.records import ShapeResult
from compress.data.batches import Text, pad_batch, tokenize
from compress.evaluation.evaluate import measure_latency
from compress.recipe.schema import ReleaseMatrixSpec, Shape
from compress.runtimes import Predict
from compress.verdict.gates import wilson_interval


def shape_matrix(
    reference: Predict,
    candidate: Predict,
    tokenizer,
    texts: list[Text],
    shapes: Sequence[Shape],
    rows: int | None,
    advance: Callable[..., None] | None = None,
) -> dict[str, ShapeResult]:
    """Per shape "BxS": rows compared, label agreement with the reference, max |Δlogit|, and
    the error if the candidate could not run the shape or answered in the wrong shape."""
    pad_id = tokenizer.pad_token_id or 0
    out = {}
    for batch_size, seq in shapes:
        chosen = texts[:rows]
        if chosen and len(chosen) < batch_size:  # a split smaller than one batch: repeat it
            chosen = (chosen * (batch_size // len(chosen) + 1))[:batch_size]
        ids = tokenize(tokenizer, chosen, seq)
        agree, seen, max_diff, error = 0, 0, 0.0, None
        for start in range(0, len(ids) - batch_size + 1, batch_size):  # full batches only
            batch = pad_batch(ids[start : start + batch_size], pad_id, width=seq)
            ref = reference(batch)
            try:
                cand = candidate(batch)
            except Exception as exc:  # a graph that cannot run this shape: that is the finding
                error = f"fails to run: {str(exc).splitlines()[0][:200]}"
                break
            if cand.shape != ref.shape:
                error = f"output shape {cand.shape}, expected {ref.shape}"
                break
            max_diff = max(max_diff, float(np.abs(ref - cand).max()))
            agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
            seen += batch_size
        out[str(Shape(batch_size, seq))] = ShapeResult(
            rows=seen,
            label_agreement=agree / seen if seen and error is None else None,
            max_abs_logit_diff=max_diff,
            error=error,
        )
        if advance is not None:
            advance()
    return out


def matrix_problems(
    matrix: dict[str, ShapeResult], min_label_agreement: float, confidence: float = 0.95
) -> list[str]:
    """One line per shape that failed to run, had no full batch, or changed conclusively more
    labels than `1 - min_label_agreement` allows: the Wilson interval of the changed share lies
    wholly above it. A point comparison fails a correct model about half the time it sits near the
    limit (9 changed of 864 where 8.6 are allowed is sampling noise, not a broken graph)."""
    problems = []
    allowed = 1 - min_label_agreement
    for shape, r in matrix.items():
        if r.error:
            problems.append(f"{shape}: {r.error}")
        elif r.label_agreement is None:
            problems.append(f"{shape}: not enough rows for one batch")
        else:
            changed = round((1 - r.label_agreement) * r.rows)
            low, high = wilson_interval(changed, r.rows, confidence)
            if low > allowed:
                problems.append(
                    f"{shape}: label agreement {r.label_agreement:.4f} < {min_label_agreement}: {changed} of "
                    f"{r.rows} rows changed, {confidence:.0%} CI {low:.2%}-{high:.2%} of rows, all above "
                    f"the {allowed:.2%} allowed"
                )
    return problems


def release_matrix(
    reference: Predict,
    candidate: Predict,
    tokenizer,
    texts: list[Text],
    spec: ReleaseMatrixSpec,
    advance: Callable[..., None] | None = None,
) -> dict[str, ShapeResult]:
    """`shape_matrix` over batches x sequences of a `ReleaseMatrixSpec`, plus the candidate's
    latency at each shape: what a deployment will be asked to serve, checked before it ships."""
    matrix = shape_matrix(reference, candidate, tokenizer, texts, spec.shapes(), spec.rows, advance)
    out = {}
    for shape, result in matrix.items():
        latency = None
        if result.error is None:
            latency = measure_latency(
                candidate, Shape.parse(shape), tokenizer.vocab_size, 1, spec.latency_repeats
            )
        out[shape] = result.model_copy(update={"latency": latency})
        if advance is not None:
            advance()
    return out
