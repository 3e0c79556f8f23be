"""INT8 for PyTorch through Intel Neural Compressor 3.x (PT2E): the one module that imports it.

`tune` exports the model with torch.export (a batch of 2 and `Dim`s, so batch and sequence stay
dynamic), lets NC's `autotune` try each expanded config (static ones calibrated by `calibrate`; all scored by
`evaluate`), and re-exports the best converted graph as an `ExportedProgram`, which
`torch.export.save` writes as a .pt2 that `torch.export.load` runs without NC, compress or a C++
compiler. Known behaviours handled here: autotune returns the best model even when no trial met the
loss (the caller's budget decides), returns None when the config set runs out before `max_trials`
(so trials are capped at the set's size), and mutates the TuningConfig it is given (it gets its own).
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

# torch's own pytree warns through copyreg while NC deep-copies exported graphs; nothing to act on
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)

INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Tuned:
    """The tuning's outcome: the exported INT8 program, its trials, and where the time went."""

    program: torch.export.ExportedProgram
    baseline: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class _Logits(torch.nn.Module):
    """A classifier as a function of tensors to logits (what torch.export and PT2E trace)."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits


def input_names(forward_names: frozenset[str]) -> tuple[str, ...]:
    """The batch inputs a model takes, in the order the exported program takes them."""
    return tuple(n for n in INPUT_ORDER if n in forward_names)


def _dynamic_shapes(names: tuple[str, ...]) -> tuple[tuple[dict[int, Any], ...]]:
    """Batch and sequence dynamic on every input (one tuple: the forward's `*tensors`)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim("sequence", min=1, max=512)
    return (tuple({0: batch, 1: sequence} for _ in names),)


def config_set(options: dict[str, list[Any]], modes: tuple[str, ...]) -> list[Any]:
    """NC's config set: static PT2E INT8 over every combination of the list-valued `options` (activations
    calibrated once, on dev rows), then dynamic INT8 (activation scales computed per batch at run time,
    no calibration) with the same weight granularities; each mode where `modes` asks for it."""
    from neural_compressor.torch.quantization import DynamicQuantConfig, StaticQuantConfig

    out = []
    if "static" in modes:
        out.append(StaticQuantConfig(**options))
    if "dynamic" in modes:
        out.append(DynamicQuantConfig(w_granularity=options["w_granularity"]))
    return out


def trial_configs(configs: list[Any], options: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Each config NC will try, in its order, as the trial table shows it: the mode and the options."""
    from neural_compressor.common.base_tuning import ConfigLoader

    rows = []
    for config in ConfigLoader(copy.deepcopy(configs)):
        mode = "dynamic" if type(config).__name__ == "DynamicQuantConfig" else "static"
        keys = options if mode == "static" else ("w_granularity",)
        rows.append({"mode": mode, **{k: config.to_dict().get(k) for k in keys}})
    return rows


def tune(
    model: torch.nn.Module,
    names: tuple[str, ...],
    example: tuple[torch.Tensor, ...],
    *,
    options: dict[str, list[Any]],
    modes: tuple[str, ...] = ("static",),
    evaluate: Callable[[Callable[..., torch.Tensor]], float],
    calibrate: Callable[[Callable[..., torch.Tensor]], None],
    max_drop: float,
    max_trials: int,
) -> Tuned:
    """Autotune INT8 configs (static, and dynamic where `modes` has it) on `model` (eval mode, CPU).
    `evaluate(fn)` and `calibrate(fn)` call `fn(*tensors in names order) -> logits`; `max_drop` is the
    tolerable absolute fall of `evaluate`'s metric. `example` has a batch of 2 or more (a batch of 1
    fixes the batch axis)."""
    from neural_compressor.common.utils.logger import Logger

    # NC's logger is a singleton that sets its level (INFO: pages per trial) when first made, and its
    # torch modules log on import: make it, quiet it, then import them. Its warnings here are notes
    # ("Auto detect accelerator: CPU", "please compile it to accelerate inference").
    Logger().get_logger().setLevel(logging.ERROR)
    from neural_compressor.torch.export import export
    from neural_compressor.torch.quantization import TuningConfig, autotune

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    wrapped = _Logits(model, names).eval()
    shapes = _dynamic_shapes(names)
    graph = export(wrapped, example, dynamic_shapes=shapes)
    if graph is None:
        raise RuntimeError("torch.export of the model failed (see Neural Compressor's log)")
    seconds["export"] = round(time.perf_counter() - t0, 2)
    tried = config_set(options, modes)
    configs = trial_configs(tried, options)
    trials: list[dict[str, Any]] = []
    scores: list[float] = []

    def eval_fn(candidate: torch.nn.Module) -> float:
        with torch.no_grad():
            score = evaluate(candidate)
        scores.append(score)
        return score

    def run_fn(candidate: torch.nn.Module) -> None:
        with torch.no_grad():
            calibrate(candidate)

    t0 = time.perf_counter()
    with torch.no_grad():
        baseline = evaluate(wrapped)
    tolerable = max_drop / baseline if baseline > 0 else 0.0
    n_trials = min(max_trials, len(configs))
    tuning = TuningConfig(config_set=tried, tolerable_loss=tolerable, max_trials=n_trials)
    best = autotune(graph, copy.deepcopy(tuning), eval_fn=eval_fn, run_fn=run_fn, example_inputs=example)
    seconds["autotune"] = round(time.perf_counter() - t0, 2)
    if best is None:
        raise RuntimeError("Neural Compressor's autotune returned no model")
    # scores[0] is autotune's own FP32 baseline; then one per trial (and none for a re-quantize)
    for i, (config, score) in enumerate(zip(configs, scores[1 : n_trials + 1], strict=False), 1):
        trials.append(
            {
                "trial": i,
                "config": config,
                "dev_metric": round(score, 6),
                "drop_points": round(100 * (baseline - score), 4),
                "passed": baseline - score <= max_drop,
            }
        )
    t0 = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(best, example, dynamic_shapes=shapes[0], strict=False)
    seconds["save_export"] = round(time.perf_counter() - t0, 2)
    return Tuned(program=program, baseline=baseline, trials=trials, seconds=seconds)


def version() -> str:
    """Neural Compressor's version, for the stage's metrics."""
    import neural_compressor

    return str(neural_compressor.__version__)
