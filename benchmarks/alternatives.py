"""compress against what a user would pick instead, side by side in one process on one machine.

    python -m benchmarks [--recipe R] [--pruned R] [--rounds N] [--pair-rounds N] [--budget PT]
    make bench

Rows: the fine-tuned checkpoint in PyTorch (eager, and `torch.compile` where it works), Optimum's
documented path (optimum-onnx export, ORTOptimizer O2, ORTQuantizer dynamic INT8 with the preset for
this CPU's ISA; a step that crashes is a row with its error), and every artifact the two recipes'
`compress run` made. For each: accuracy on the test split (SST-2's 872-row validation set), drop vs
PyTorch FP32, latency median / p90 at 1x128, 1x32 and 32x64 (models take turns each round), throughput
at 32x64, weight size, and the peak RSS of a fresh process that loads the model and answers 32x64.

Every model runs with intra-op threads = this machine's cores, and none spin-waits between calls
(ONNX Runtime's `allow_spinning` off, OpenMP's wait policy passive): otherwise the idle threads of
one model hold the cores the next model in the rotation needs.

Speedups are measured pair by pair: reference and candidate alternate call by call, and the ratio of
their medians is reported with the 10th-90th percentile of the per-round ratios, so drift on a noisy
machine hits both sides alike. The floor is each model's multiply-accumulates at 1x128 over the rate
its runtime reaches on one large GEMM of the same precision here (INT8 models: their linear layers at
the INT8 rate, the attention matmuls, which dynamic quantization leaves in FP32, at the FP32 rate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks import gemm

# Models take turns on the same cores: a runtime whose threads spin-wait after a call (GNU OpenMP
# under PyTorch by default, ONNX Runtime's pool) would steal the next model's cores. Set before torch
# loads its OpenMP runtime; ONNX Runtime sessions here are made with spinning off.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SHAPES = ((1, 128), (1, 32), (32, 64))
DEFAULT_RECIPE = Path("recipes/sst2-minilm-int8.toml")
DEFAULT_PRUNED = Path("recipes/sst2-minilm-pruned-int8.toml")


@dataclass
class Model:
    name: str
    runtime: str  # "torch" | "torch.compile" | "onnxruntime"
    precision: str  # "fp32" | "int8"
    path: Path | None  # folder with the model (and tokenizer)
    source: Path | None  # the torch checkpoint it was made from (for its MACs)
    family: str  # "pytorch" | "optimum" | "compress"
    error: str | None = None  # the step that made it crashed
    row: dict = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="export + quantize recipe")
    parser.add_argument(
        "--pruned", type=Path, default=DEFAULT_PRUNED, help="prune + export + quantize recipe"
    )
    parser.add_argument("--rounds", type=int, default=40, help="latency rounds at 1xN (32x64: a third)")
    parser.add_argument("--pair-rounds", type=int, default=60, help="alternating A/B rounds per pair")
    parser.add_argument("--budget", type=float, default=1.0, help="accuracy points for 'best compress'")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/alternatives.json"))
    parser.add_argument("--markdown", type=Path, default=Path("benchmarks/results/alternatives.md"))
    args = parser.parse_args(argv)

    import torch

    from compress.core.environment import cpu_info
    from compress.core.progress import Reporter
    from compress.data.splits import load_splits
    from compress.pipeline import runner
    from compress.recipe.load import load_recipe

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    reporter = Reporter()
    loaded = load_recipe(args.recipe)
    full = runner.run(loaded, reporter=reporter)
    pruned = runner.run(load_recipe(args.pruned), reporter=reporter)
    splits = load_splits(loaded.recipe.data)
    checkpoint = full.artifacts["finetune"][0].path
    pruned_checkpoint = pruned.artifacts["prune"][0].path

    with tempfile.TemporaryDirectory() as tmp:
        models = [
            Model("PyTorch FP32 eager", "torch", "fp32", checkpoint, checkpoint, "pytorch"),
            Model("PyTorch FP32 torch.compile", "torch.compile", "fp32", checkpoint, checkpoint, "pytorch"),
            *optimum_models(checkpoint, Path(tmp)),
            Model(
                "compress ONNX FP32",
                "onnxruntime",
                "fp32",
                full.artifacts["export"][0].path,
                checkpoint,
                "compress",
            ),
            Model(
                "compress INT8",
                "onnxruntime",
                "int8",
                full.artifacts["quantize"][0].path,
                checkpoint,
                "compress",
            ),
            Model(
                "compress pruned ONNX FP32",
                "onnxruntime",
                "fp32",
                pruned.artifacts["export"][0].path,
                pruned_checkpoint,
                "compress",
            ),
            Model(
                "compress pruned + INT8",
                "onnxruntime",
                "int8",
                pruned.artifacts["quantize"][0].path,
                pruned_checkpoint,
                "compress",
            ),
        ]
        reporter.info("GEMM rates (first, before the models' sessions and threads exist)")
        rates = gemm.rates()
        predictors = load_predictors(models)
        reporter.info("accuracy on the test split")
        for m in models:
            if m.error is None:
                m.row.update(accuracy_of(m, predictors[m.name], splits.test, loaded.recipe.data.max_length))
        reporter.info("latency, models taking turns")
        for batch, seq in SHAPES:
            rounds = args.rounds if batch == 1 else max(5, args.rounds // 3)
            live = {m.name: predictors[m.name] for m in models if m.error is None}
            for name, times in gemm.interleaved(live, batch, seq, rounds).items():
                row = next(m.row for m in models if m.name == name)
                row[f"{batch}x{seq}"] = {
                    "median_ms": round(float(np.median(times)), 2),
                    "p90_ms": round(float(np.percentile(times, 90)), 2),
                }
        for m in models:
            if m.error is None:
                m.row["throughput_32x64_rows_per_s"] = round(32 / m.row["32x64"]["median_ms"] * 1000, 1)
                m.row["size_mb"] = round(weights_mb(m), 1)
        reporter.info("peak RSS, one fresh process per model")
        for m in models:
            if m.error is None:
                m.row["peak_rss_mb"] = peak_rss(m)
        for m in models:
            if m.error is None:
                m.row.update(floor_of(m, rates))
        reference = next(m for m in models if m.name == "PyTorch FP32 eager")
        optimum = next(
            (m for m in models if m.family == "optimum" and m.precision == "int8" and m.error is None), None
        )
        for m in models:
            if m.error is None:
                m.row["drop_points"] = round((reference.row["accuracy"] - m.row["accuracy"]) * 100, 2)
        reporter.info("paired speedups, A/B alternating")
        pairs = {}
        for m in models:
            if m.family != "compress":
                continue
            for ref in (reference, optimum):
                if ref is None:
                    continue
                pairs[f"{m.name} vs {ref.name}"] = {
                    f"{b}x{s}": gemm.paired_speedup(
                        predictors[ref.name],
                        predictors[m.name],
                        b,
                        s,
                        args.pair_rounds if b == 1 else max(5, args.pair_rounds // 3),
                    )
                    for b, s in SHAPES
                }

    verdict = best_against_optimum(models, optimum, pairs, args.budget)
    command = (
        f"python -m benchmarks --recipe {args.recipe} --pruned {args.pruned} --rounds {args.rounds} "
        f"--pair-rounds {args.pair_rounds} --budget {args.budget}"
    )
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": command,
        "cpu": cpu_info(),
        "threads": threads,
        "python": platform.python_version(),
        "versions": versions(),
        "models": {
            m.name: {"runtime": m.runtime, "precision": m.precision, "error": m.error, **m.row}
            for m in models
        },
        "gemm_rates_gmacs": rates,
        "paired_speedups": pairs,
        "best_vs_optimum": verdict,
    }
    text = markdown(result)
    print("\n" + text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    args.markdown.write_text(text + "\n")
    print(f"\nwrote {args.json} and {args.markdown}")
    return 0


def optimum_models(checkpoint: Path, tmp: Path) -> list[Model]:
    """Optimum's path as its documentation shows a user; each step that crashes becomes a row."""
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig

    from compress.quantization.isa import resolve_isa

    isa = resolve_isa("auto")
    preset = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=False)
    export, o2 = tmp / "optimum-export", tmp / "optimum-o2"
    model = ORTModelForSequenceClassification.from_pretrained(checkpoint, export=True)
    model.save_pretrained(export)
    out = [Model("Optimum ONNX FP32 (export)", "onnxruntime", "fp32", export, checkpoint, "optimum")]
    steps = [
        ("Optimum O2 FP32", "fp32", o2, "model_optimized.onnx"),
        (
            f"Optimum O2 + dynamic INT8 ({isa})",
            "int8",
            tmp / "optimum-o2-int8",
            "model_optimized_quantized.onnx",
        ),
        (f"Optimum dynamic INT8 ({isa}, plain export)", "int8", tmp / "optimum-int8", "model_quantized.onnx"),
    ]
    for name, precision, folder, produced in steps:
        entry = Model(name, "onnxruntime", precision, folder, checkpoint, "optimum")
        try:
            if name.startswith("Optimum O2 FP32"):
                ORTOptimizer.from_pretrained(export).optimize(
                    save_dir=folder, optimization_config=AutoOptimizationConfig.O2()
                )
            else:
                source, file_name = (o2, "model_optimized.onnx") if "O2" in name else (export, "model.onnx")
                ORTQuantizer.from_pretrained(source, file_name=file_name).quantize(
                    save_dir=folder, quantization_config=preset
                )
            shutil.copy(folder / produced, folder / "model.onnx")  # what compress's loader opens
            copy_tokenizer(checkpoint, folder)
        except Exception as exc:  # a crash in the user's path is a result, reported as a row
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            entry.error, entry.path = last[:300], None
        out.append(entry)
    copy_tokenizer(checkpoint, export)
    return out


def copy_tokenizer(checkpoint: Path, folder: Path) -> None:
    for f in checkpoint.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")) and not (folder / f.name).exists():
            shutil.copy(f, folder / f.name)


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


def floor_of(m: Model, rates: dict) -> dict:
    """The 1x128 latency this model would have if every MAC ran at its runtime's large-GEMM rate."""
    from compress.models.loading import load_classifier

    linear, attention = macs_at(load_classifier(m.source), 1, 128)
    runtime = "torch" if m.runtime.startswith("torch") else "onnxruntime"
    fp32 = rates.get(f"{runtime} fp32", {}).get("gmacs")
    if m.precision == "int8":
        int8 = rates.get(f"{runtime} int8", {}).get("gmacs")
        if not int8 or not fp32:
            return {}
        seconds = linear / (int8 * 1e9) + attention / (fp32 * 1e9)
    else:
        if not fp32:
            return {}
        seconds = (linear + attention) / (fp32 * 1e9)
    floor_ms = seconds * 1000
    return {
        "macs_1x128_millions": round((linear + attention) / 1e6, 1),
        "floor_1x128_ms": round(floor_ms, 2),
        "times_floor_1x128": round(m.row["1x128"]["median_ms"] / floor_ms, 2),
    }


def macs_at(model, batch: int, sequence: int) -> tuple[int, int]:
    """(linear-layer MACs, attention-matmul MACs) at batch x sequence, from the layers' real shapes:
    Q/K/V, output and FFN projections, pooler and classifier; QK^T and attention x V."""
    from compress.models.pruning import layers

    d, s = model.config.hidden_size, sequence
    linear = attention = 0
    for layer in layers(model):
        inner = layer.attention.self.all_head_size
        ffn = layer.intermediate.dense.out_features
        linear += 3 * s * d * inner + s * inner * d + 2 * s * d * ffn
        attention += 2 * s * s * inner
    linear += d * d + d * model.config.num_labels  # pooler and classifier: the first token only
    return batch * linear, batch * attention


def best_against_optimum(models: list[Model], optimum: Model | None, pairs: dict, budget: float) -> dict:
    """The fastest compress artifact at 1x128 within `budget` points of PyTorch FP32, and how it
    stands against Optimum's working INT8 path: speed from the paired run, accuracy difference."""
    eligible = [
        m for m in models if m.family == "compress" and m.error is None and m.row["drop_points"] <= budget
    ]
    if not eligible or optimum is None:
        return {
            "answer": "no comparison: "
            + ("no compress artifact within budget" if not eligible else "Optimum's path did not run")
        }
    best = min(eligible, key=lambda m: m.row["1x128"]["median_ms"])
    paired = pairs[f"{best.name} vs {optimum.name}"]["1x128"]
    accuracy_gap = round((best.row["accuracy"] - optimum.row["accuracy"]) * 100, 2)
    faster = paired["speedup"] > 1
    return {
        "best": best.name,
        "optimum": optimum.name,
        "budget_points": budget,
        "speedup_1x128": paired["speedup"],
        "speedup_1x128_p10_p90": [paired["p10"], paired["p90"]],
        "accuracy_points_vs_optimum": accuracy_gap,
        "faster": faster,
        "accuracy_equal_or_better": accuracy_gap >= 0,
        "answer": (
            (
                f"{best.name} is {paired['speedup']:.2f}x faster than {optimum.name}"
                if faster
                else f"{best.name} is SLOWER than {optimum.name}: {paired['speedup']:.2f}x its speed"
            )
            + f" at 1x128 (paired, 10-90%: {paired['p10']:.2f}-{paired['p90']:.2f}x); "
            f"accuracy {accuracy_gap:+.2f} pt against it"
        ),
    }


def versions() -> dict:
    import importlib.metadata as md

    return {
        p: md.version(p) for p in ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime")
    }


def markdown(result: dict) -> str:
    cpu = result["cpu"]
    lines = [
        f"Measured {result['date']} on {cpu.get('model', '?')} ({result['threads']} threads), "
        f"`{result['command']}`.",
        "",
        "| model | accuracy | drop pt | 1x128 ms (p90) | 1x32 ms (p90) | 32x64 ms (p90) | rows/s 32x64 "
        "| MB | peak RSS MB | floor 1x128 ms | × floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["models"].items():
        if r["error"]:
            lines.append(f"| {name} | crashed: `{r['error']}` | | | | | | | | | |")
            continue
        shapes = " | ".join(
            f"{r[f'{b}x{s}']['median_ms']:.1f} ({r[f'{b}x{s}']['p90_ms']:.1f})" for b, s in SHAPES
        )
        lines.append(
            f"| {name} | {r['accuracy']:.4f} | {r['drop_points']:+.2f} | {shapes} | "
            f"{r['throughput_32x64_rows_per_s']:.0f} | {r['size_mb']:.1f} | {r.get('peak_rss_mb') or '—'} | "
            f"{r.get('floor_1x128_ms', '—')} | {r.get('times_floor_1x128', '—')} |"
        )
    lines += [
        "",
        "Paired speedups (reference time / compress time; median of alternating rounds, 10-90%):",
        "",
    ]
    lines += ["| pair | " + " | ".join(f"{b}x{s}" for b, s in SHAPES) + " |", "|---|---|---|---|"]
    for pair, by_shape in result["paired_speedups"].items():
        cells = " | ".join(
            "{speedup:.2f}x ({p10:.2f}-{p90:.2f})".format(**by_shape[f"{b}x{s}"]) for b, s in SHAPES
        )
        lines.append(f"| {pair} | {cells} |")
    rates = "; ".join(
        f"{k} {v['gmacs']:.1f}" if "gmacs" in v else f"{k}: none ({v['error']})"
        for k, v in result["gemm_rates_gmacs"].items()
    )
    lines += [
        "",
        f"Large-GEMM rates (GMAC/s): {rates}.",
        "",
        f"**Best compress within budget:** {result['best_vs_optimum']['answer']}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
