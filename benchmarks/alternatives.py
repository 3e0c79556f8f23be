"""compress against what a user would pick instead, side by side in one process on one machine.

    python -m benchmarks [--recipe R ...] [--rounds N] [--pair-rounds N] [--budget PT]
    make bench

Rows: the first recipe's fine-tuned checkpoint in PyTorch (eager, and `torch.compile` where it works),
Optimum's documented path on it (optimum-onnx export, ORTOptimizer O2, ORTQuantizer dynamic INT8 with
the preset for this CPU's ISA; a step that crashes is a row with its error), and every CPU target the
recipes' `compress run` bundled (ONNX Runtime and PyTorch, FP32 and INT8; the torch/int8 target in the
form its bundle serves, AOTInductor's package where built). For each: accuracy on the test split
(SST-2's 872-row validation set), drop vs PyTorch FP32, latency median / p90 at 1x128, 1x32 and 32x64
(models take turns each round), throughput at 32x64, weight size, and the peak RSS of a fresh process
that loads the model and answers 32x64. Each INT8 graph is also profiled at 32x64: ONNX ones per op
(benchmarks/onnx_profile.py), torch/int8 programs per kernel kind (benchmarks/torch_profile.py: the
fused oneDNN package, whichever the stage served, since Inductor's GEMM templates cannot be profiled).
The goals of the INT8 issue are judged MET / NOT MET at the end (benchmarks/goals.py).

Every model runs with intra-op threads = this machine's cores. ONNX Runtime sessions do not spin-wait
after a call (`allow_spinning` off): with spinning on, its idle pool held the cores long after each call
and the PyTorch INT8 package interleaved with it took 28.9 ms at 1x128 against 7.3 ms alone, even with
5 ms between calls. Every ONNX Runtime model here, Optimum's and compress's, runs the same way, so
their ratios are unaffected; against PyTorch rows the setting may cost ONNX Runtime some speed at
small shapes (one scratch check: 7.2 ms without spinning, 5.3 ms with, alone; noisy). PyTorch keeps
GNU OpenMP's default wait policy, which spins only briefly: every timed call starts after an idle gap
(benchmarks.common.IDLE_GAP_S) so those threads are asleep when the next model starts. (Forcing
OpenMP's policy to passive instead, as an earlier version did, doubled the PyTorch INT8 package's time
at 1x128: 14.0 against 7.1 ms. These figures: one-off scratch scripts on 2026-11-30 on this project's
2-core Xeon, not kept in benchmarks/.)

Speedups are measured pair by pair: reference and candidate alternate call by call, and the ratio of
their medians is reported with the 10th-90th percentile of the per-round ratios, so drift on a noisy
machine hits both sides alike. The floor is each model's multiply-accumulates at 1x128 and 32x64 over
the rate its runtime reaches on one large GEMM of the same precision here (INT8 models: their linear
layers at the INT8 rate, the attention matmuls, which dynamic quantization leaves in FP32, at the FP32
rate; PyTorch INT8 at ONNX Runtime's INT8 rate, the only INT8 GEMM rate measured).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks import gemm, goals, onnx_profile, torch_profile
from benchmarks.alternatives_report import SHAPES, SPEED_SHAPES, markdown
from benchmarks.optimum_path import optimum_models
from benchmarks.rows import Model, compress_models

DEFAULT_RECIPES = (
    Path("recipes/sst2-minilm-torch-int8.toml"),
    Path("recipes/sst2-minilm-pruned-torch-int8.toml"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--recipe",
        type=Path,
        action="append",
        help="a recipe whose CPU targets are measured (repeat it; the first one's fine-tuned checkpoint "
        "is the PyTorch FP32 reference). Default: " + ", ".join(map(str, DEFAULT_RECIPES)),
    )
    parser.add_argument("--rounds", type=int, default=40, help="latency rounds at 1xN (32x64: a third)")
    parser.add_argument("--pair-rounds", type=int, default=60, help="alternating A/B rounds per pair")
    parser.add_argument("--budget", type=float, default=1.0, help="accuracy points for 'best compress'")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/alternatives.json"))
    parser.add_argument("--markdown", type=Path, default=Path("benchmarks/results/alternatives.md"))
    args = parser.parse_args(argv)
    recipes = args.recipe or list(DEFAULT_RECIPES)

    import torch

    from compress.core.environment import cpu_info
    from compress.core.progress import Reporter
    from compress.data.splits import load_splits
    from compress.pipeline import runner
    from compress.recipe.load import load_recipe

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    reporter = Reporter()
    loaded = [load_recipe(r) for r in recipes]
    outcomes = [runner.run(recipe, reporter=reporter) for recipe in loaded]
    data = loaded[0].recipe.data
    splits = load_splits(data)
    checkpoint = outcomes[0].artifacts["finetune"][0].path

    with tempfile.TemporaryDirectory() as tmp:
        models = [
            Model("PyTorch FP32 eager", "torch", "fp32", checkpoint, checkpoint, "pytorch"),
            Model("PyTorch FP32 torch.compile", "torch.compile", "fp32", checkpoint, checkpoint, "pytorch"),
            *optimum_models(checkpoint, Path(tmp)),
            *compress_models(outcomes),
        ]
        reporter.info("GEMM rates (first, before the models' sessions and threads exist)")
        rates = gemm.rates()
        predictors = load_predictors(models)
        live = [m for m in models if m.error is None]
        reporter.info("accuracy on the test split")
        for m in live:
            m.row.update(accuracy_of(m, predictors[m.name], splits.test, data.max_length))
        reporter.info("latency, models taking turns")
        for batch, seq in SHAPES:
            rounds = args.rounds if batch == 1 else max(5, args.rounds // 3)
            timed = {m.name: predictors[m.name] for m in live}
            for name, times in gemm.interleaved(timed, batch, seq, rounds).items():
                row = next(m.row for m in models if m.name == name)
                row[f"{batch}x{seq}"] = {
                    "median_ms": round(float(np.median(times)), 2),
                    "p90_ms": round(float(np.percentile(times, 90)), 2),
                }
        for m in live:
            m.row["throughput_32x64_rows_per_s"] = round(32 / m.row["32x64"]["median_ms"] * 1000, 1)
            m.row["size_mb"] = round(weights_mb(m), 1)
            m.row.update(floor_of(m, rates))
        reporter.info("per-op profile of each ONNX INT8 graph at 32x64")
        for m in live:
            if m.runtime == "onnxruntime" and m.precision == "int8":
                times = onnx_profile.op_times(m.path, 32, 64)
                m.row["op_ms_32x64"] = times
                m.row["gemm_share_32x64"] = round(onnx_profile.gemm_share(times), 3)
        reporter.info("per-kernel profile of each torch/int8 program at 32x64 (its fused package, profiled)")
        for m in live:
            if m.runtime == "torch" and m.precision == "int8" and (m.extra.get("compile") or {}).get("built"):
                times = torch_profile_of(m)
                m.row["op_ms_32x64"] = times
                m.row["gemm_share_32x64"] = round(torch_profile.gemm_share(times), 3)
        reporter.info("peak RSS, one fresh process per model")
        for m in live:
            m.row["peak_rss_mb"] = peak_rss(m)
        reference = next(m for m in models if m.name == "PyTorch FP32 eager")
        optimum = next((m for m in live if m.family == "optimum" and m.precision == "int8"), None)
        for m in live:
            m.row["drop_points"] = round((reference.row["accuracy"] - m.row["accuracy"]) * 100, 2)
        reporter.info("paired speedups, A/B alternating")
        pairs = {
            f"{m.name} vs {ref.name}": {
                f"{b}x{s}": gemm.paired_speedup(
                    predictors[ref.name],
                    predictors[m.name],
                    b,
                    s,
                    args.pair_rounds if b == 1 else max(5, args.pair_rounds // 3),
                )
                for b, s in SPEED_SHAPES
            }
            for m in live
            if m.family == "compress"
            for ref in (reference, optimum)
            if ref is not None
        }

    measured = [measured_row(m) for m in live]
    judged = goals.judge(
        measured,
        pairs,
        eager=reference.name,
        optimum=next((r for r in measured if optimum and r.name == optimum.name), None),
        budget=args.budget,
    )
    command = "python -m benchmarks " + " ".join(
        [*(f"--recipe {r}" for r in recipes), f"--rounds {args.rounds}", f"--pair-rounds {args.pair_rounds}"]
        + [f"--budget {args.budget}"]
    )
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": command,
        "cpu": cpu_info(),
        "threads": threads,
        "python": platform.python_version(),
        "versions": versions(),
        "models": {
            m.name: {
                "runtime": m.runtime,
                "precision": m.precision,
                "error": m.error,
                "recipe": m.recipe,
                "pruned": m.pruned,
                "gate": m.gate,
                **m.row,
                **(
                    {"trials": m.extra["trials"], "compile": m.extra["compile"]}
                    if "trials" in m.extra
                    else {}
                ),
            }
            for m in models
        },
        "gemm_rates_gmacs": rates,
        "paired_speedups": pairs,
        "goals": judged,
    }
    text = markdown(result)
    print("\n" + text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    args.markdown.write_text(text + "\n")
    print(f"\nwrote {args.json} and {args.markdown}")
    return 0


def measured_row(m: Model) -> goals.Measured:
    """What the goals read of a measured row."""
    keys = ("times_floor_32x64", "floor_32x64_ms", "gemm_share_32x64", "times_gemm_floor_32x64")
    return goals.Measured(
        name=m.name,
        family=m.family,
        runtime=m.runtime,
        precision=m.precision,
        accuracy=m.row["accuracy"],
        drop_points=m.row["drop_points"],
        pruned=m.pruned,
        gate=m.gate,
        recipe_verdict=m.recipe_verdict,
        extra={**{k: m.row[k] for k in keys if k in m.row}, **m.extra},
    )


def load_predictors(models: list[Model]) -> dict:
    from compress.runtimes import RUNTIMES, onnxruntime_predictor

    predictors = {}
    for m in models:
        if m.error is not None:
            continue
        try:
            if m.runtime == "torch.compile":
                predictors[m.name] = compiled_predictor(m.path)
                predictors[m.name](gemm.feed(1, 8))  # compile now: a failure is this row's result
            elif m.runtime == "onnxruntime":
                predictors[m.name] = onnxruntime_predictor(m.path, spinning=False)
            else:
                predictors[m.name] = RUNTIMES[m.runtime](m.path)
        except Exception as exc:
            m.error = traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]
    return predictors


def compiled_predictor(folder: Path):
    import torch

    from compress.models.loading import load_classifier

    model = torch.compile(load_classifier(folder), dynamic=True)

    def predict(batch: dict) -> np.ndarray:
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.float().numpy()

    return predict


def accuracy_of(m: Model, predict, test, max_length: int) -> dict:
    from compress.data.batches import pad_batch, tokenize
    from compress.models.loading import load_tokenizer

    tokenizer = load_tokenizer(m.source)
    ids = tokenize(tokenizer, test.texts, max_length)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    predictions = np.zeros(len(ids), dtype=np.int64)
    for start in range(0, len(order), 64):
        rows = order[start : start + 64]
        predictions[rows] = predict(pad_batch([ids[i] for i in rows], tokenizer.pad_token_id or 0)).argmax(-1)
    return {"accuracy": round(float((predictions == np.asarray(test.labels)).mean()), 4), "rows": len(ids)}


def weights_mb(m: Model) -> float:
    """The weight files the runtime loads (an Optimum folder also holds the steps before it)."""
    from compress.evaluation.evaluate import weights_bytes

    if m.runtime == "onnxruntime":
        return sum(f.stat().st_size for f in m.path.glob("model.onnx*")) / 1e6
    return weights_bytes(m.path) / 1e6


def peak_rss(m: Model) -> float | None:
    """MB: the high-water mark of a fresh process that loads the model and answers 32x64 three times."""
    command = [sys.executable, "-m", "benchmarks.peak_rss", m.runtime, str(m.path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


def torch_profile_of(m: Model) -> dict[str, float]:
    """ms per kernel kind of a torch/int8 program at 32x64, profiled in a fresh process (why: the
    benchmarks.torch_profile docstring)."""
    command = [sys.executable, "-m", "benchmarks.torch_profile", str(m.path), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"torch_profile failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def floor_of(m: Model, rates: dict) -> dict:
    """The latency this model would have at 1x128 and 32x64 if every MAC ran at the large-GEMM rate of
    its precision here, and how many times that its median is."""
    from compress.models.loading import load_classifier

    model = load_classifier(m.source)
    runtime = "torch" if m.runtime.startswith("torch") and m.precision == "fp32" else "onnxruntime"
    fp32 = rates.get(f"{runtime} fp32", {}).get("gmacs")
    int8 = rates.get("onnxruntime int8", {}).get("gmacs")
    if not fp32 or (m.precision == "int8" and not int8):
        return {}
    out: dict = {}
    for batch, sequence in SPEED_SHAPES:
        linear, attention = macs_at(model, batch, sequence)
        if m.precision == "int8":
            seconds = linear / (int8 * 1e9) + attention / (fp32 * 1e9)
        else:
            seconds = (linear + attention) / (fp32 * 1e9)
        shape = f"{batch}x{sequence}"
        out[f"macs_{shape}_millions"] = round((linear + attention) / 1e6, 1)
        out[f"floor_{shape}_ms"] = round(seconds * 1000, 2)
        out[f"times_floor_{shape}"] = round(m.row[shape]["median_ms"] / (seconds * 1000), 2)
        if m.precision == "int8":
            # a second, closer floor: each linear layer as a bare INT8 GEMM of its own shape here
            bare = sum(gemm_ms(*s) for s in linear_shapes(model, batch * sequence)) + attention / (fp32 * 1e6)
            out[f"gemm_floor_{shape}_ms"] = round(bare, 2)
            out[f"times_gemm_floor_{shape}"] = round(m.row[shape]["median_ms"] / bare, 2)
    return out


_GEMM_MS: dict[tuple[int, int, int], float] = {}


def gemm_ms(m: int, k: int, n: int) -> float:
    """A bare ONNX Runtime INT8 GEMM's milliseconds, measured once per shape."""
    if (m, k, n) not in _GEMM_MS:
        _GEMM_MS[m, k, n] = gemm.onnxruntime_int8_gemm_ms(m, k, n)
    return _GEMM_MS[m, k, n]


def linear_shapes(model, tokens: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every encoder linear layer at `tokens` rows: the fused Q/K/V projection (as
    QAttention runs it), the attention output and the two FFN layers."""
    from compress.models.pruning import layers

    d = model.config.hidden_size
    shapes = []
    for layer in layers(model):
        inner, ffn = layer.attention.self.all_head_size, layer.intermediate.dense.out_features
        shapes += [(tokens, d, 3 * inner), (tokens, inner, d), (tokens, d, ffn), (tokens, ffn, d)]
    return shapes


def macs_at(model, batch: int, sequence: int) -> tuple[int, int]:
    """(linear-layer MACs, attention-matmul MACs) at batch x sequence, from the layers' real shapes:
    Q/K/V, output and FFN projections (`linear_shapes`), pooler and classifier; QK^T and attention x V."""
    from compress.models.pruning import layers

    d = model.config.hidden_size
    linear = sum(m * k * n for m, k, n in linear_shapes(model, sequence))
    linear += d * d + d * model.config.num_labels  # pooler and classifier: the first token only
    attention = sum(2 * sequence * sequence * layer.attention.self.all_head_size for layer in layers(model))
    return batch * linear, batch * attention


def versions() -> dict:
    import importlib.metadata as md

    return {
        p: md.version(p) for p in ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime")
    }


if __name__ == "__main__":
    sys.exit(main())
