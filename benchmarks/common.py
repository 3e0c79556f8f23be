"""What every benchmark here does first: parse the command line, run the recipe (reusing its cache),
load its splits; and how it times models: interleaved, so drift on a noisy machine hits all alike."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Idle time before each timed call: GNU OpenMP's threads (PyTorch) spin-wait briefly after a call by
# default, and the next model must not find its cores taken. 5 ms is longer than that spin; alone, the
# PyTorch INT8 package's 1x128 time is the same with and without it (7.0 vs 7.1 ms; a one-off scratch
# script, 2026-11-30).
IDLE_GAP_S = 0.005


@dataclass
class Prepared:
    args: argparse.Namespace
    loaded: object  # compress.recipe.load.LoadedRecipe
    outcome: object  # compress.pipeline.runner.RunOutcome
    splits: object  # compress.data.splits.Splits
    num_labels: int
    reporter: object

    def evaluate(self, artifact) -> dict:
        """Test-split metrics of one artifact in its own runtime (no latency)."""
        from compress.evaluation.evaluate import evaluate_artifact

        evaluation, _ = evaluate_artifact(
            artifact,
            self.splits.test,
            num_labels=self.num_labels,
            max_length=self.loaded.recipe.data.max_length,
            spec=self.loaded.recipe.evaluation,
            shapes=[],
            progress=self.reporter,
        )
        return evaluation.to_json()


def prepare(name: str, rounds: int, needs: tuple[str, ...], add_arguments=None) -> Prepared:
    from compress.core.progress import Reporter
    from compress.data.splits import load_splits, num_labels
    from compress.pipeline import runner
    from compress.recipe.load import load_recipe

    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}")
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--json", type=Path, default=Path(f"benchmarks/results/{name}.json"))
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    loaded = load_recipe(args.recipe)
    missing = [t for t in needs if getattr(loaded.recipe, t) is None]
    if missing:
        sys.exit(f"error: {args.recipe} needs the tables: {', '.join(f'[{t}]' for t in missing)}")
    reporter = Reporter()
    outcome = runner.run(loaded, reporter=reporter)
    splits = load_splits(loaded.recipe.data)
    return Prepared(args, loaded, outcome, splits, num_labels(loaded.recipe.data, splits.train), reporter)


def folder_beside(fp32_folder: Path, folder: Path) -> Path:
    """A new `folder` holding `fp32_folder`'s config and tokenizer (everything but the graph), for
    another graph of the same model to be written into."""
    folder.mkdir()
    for f in fp32_folder.iterdir():
        if f.suffix != ".onnx":
            (folder / f.name).write_bytes(f.read_bytes())
    return folder


def interleaved_latency(predictors: dict, batch: int, sequence: int, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per call of each predictor at batch x sequence, the predictors taking turns."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, size=(batch, sequence), dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    for predict in predictors.values():  # warm-up
        for _ in range(5):
            predict(feed)
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(rounds):
        for name, predict in predictors.items():
            time.sleep(IDLE_GAP_S)
            start = time.perf_counter()
            predict(feed)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def share_of(times: dict[str, float], kinds: frozenset[str]) -> float:
    """The fraction of a profile's total time (ms per kind) spent in `kinds`."""
    total = sum(times.values())
    return sum(ms for kind, ms in times.items() if kind in kinds) / total if total else 0.0


def print_profile(times: dict[str, float], what: str, batch: int, sequence: int) -> None:
    """A profile (ms per kind) as a markdown table with each kind's share."""
    total = sum(times.values()) or 1.0
    print(f"| {what} | ms per call at {batch}x{sequence} | share |\n|---|---|---|")
    for kind, ms in times.items():
        print(f"| {kind} | {ms:.2f} | {ms / total:.1%} |")
