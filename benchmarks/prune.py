"""Pruned vs unpruned, side by side in one process: MACs, parameters, accuracy, ONNX Runtime latency.

    python -m benchmarks.prune recipes/sst2-minilm.toml [--rounds 40] [--json PATH]

Runs the recipe (reusing its cache), exports the unpruned fine-tuned checkpoint to ONNX beside the
pruned one, evaluates both on the recipe's test split, then times both at 1x128 (and 32x64) with
their repeats interleaved A/B/A/B so that drift on a noisy machine hits both alike.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.common import interleaved_latency, prepare


def main() -> int:
    from compress import pruning
    from compress.core.artifact import Artifact
    from compress.core.environment import cpu_info
    from compress.models.loading import load_classifier
    from compress.models.onnx_export import export_onnx
    from compress.runtimes import RUNTIMES

    run = prepare("prune", rounds=40, needs=("prune", "export"))
    args, loaded, splits = run.args, run.loaded, run.splits
    unpruned_ckpt = run.outcome.artifacts["finetune"][0].path
    pruned_ckpt = run.outcome.artifacts["prune"][0].path
    pruned_onnx = run.outcome.artifacts["export"][0]

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(unpruned_ckpt, Path(tmp) / "onnx", loaded.recipe.export.opset)
        unpruned_onnx = Artifact("onnx", "onnxruntime", "fp32", Path(tmp) / "onnx")
        models = {"unpruned": (unpruned_ckpt, unpruned_onnx), "pruned": (pruned_ckpt, pruned_onnx)}
        rows = {}
        for name, (ckpt, onnx_artifact) in models.items():
            torch_model = load_classifier(ckpt)
            evaluation = run.evaluate(onnx_artifact)
            rows[name] = {
                "encoder_macs_1x128": pruning.encoder_macs(torch_model, 1, 128),
                "parameters": pruning.parameter_counts(torch_model),
                "heads": sum(pruning.head_counts(torch_model)),
                "ffn_neurons": sum(pruning.ffn_sizes(torch_model)),
                "accuracy": evaluation["accuracy"],
                "onnx_mb": round(evaluation["size_bytes"] / 1e6, 2),
            }
        predictors = {name: RUNTIMES["onnxruntime"](art.path) for name, (_, art) in models.items()}
        for shape in ((1, 128), (32, 64)):
            times = interleaved_latency(predictors, *shape, rounds=args.rounds)
            for name, t in times.items():
                rows[name][f"{shape[0]}x{shape[1]}_ms"] = {
                    "median": round(float(np.median(t)), 3),
                    "p90": round(float(np.percentile(t, 90)), 3),
                }

    reload_diff = plain_reload_difference(pruned_ckpt, splits.test.texts[:256], loaded.recipe.data.max_length)
    base, pruned = rows["unpruned"], rows["pruned"]
    summary = {
        "encoder_macs_reduction": round(1 - pruned["encoder_macs_1x128"] / base["encoder_macs_1x128"], 4),
        "accuracy_drop_points": round((base["accuracy"] - pruned["accuracy"]) * 100, 2),
        "speedup_1x128": round(base["1x128_ms"]["median"] / pruned["1x128_ms"]["median"], 3),
        "speedup_32x64": round(base["32x64_ms"]["median"] / pruned["32x64_ms"]["median"], 3),
        "plain_reload_max_abs_logit_diff": reload_diff,
    }
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": f"python -m benchmarks.prune {args.recipe} --rounds {args.rounds}",
        "cpu": cpu_info(),
        "threads": os.cpu_count(),
        "prune": loaded.recipe.prune.model_dump(mode="json"),
        "models": rows,
        "summary": summary,
    }
    print(f"\n{args.recipe} — {result['cpu']['model']}, {result['threads']} threads, {result['date']}")
    print(
        f"{'model':10} {'heads':>5} {'FFN':>6} {'enc. MACs 1x128':>16} {'params':>11} {'accuracy':>9} "
        f"{'1x128 ms':>9} {'32x64 ms':>9} {'ONNX MB':>8}"
    )
    for name, r in rows.items():
        print(
            f"{name:10} {r['heads']:>5} {r['ffn_neurons']:>6} {r['encoder_macs_1x128'] / 1e6:>15.1f}M "
            f"{r['parameters']['total'] / 1e6:>10.2f}M {r['accuracy']:>9.4f} {r['1x128_ms']['median']:>9.2f} "
            f"{r['32x64_ms']['median']:>9.1f} {r['onnx_mb']:>8.1f}"
        )
    print(
        f"MACs -{summary['encoder_macs_reduction']:.1%}, "
        f"accuracy drop {summary['accuracy_drop_points']:+.2f} pt, "
        f"ONNX Runtime speed-up {summary['speedup_1x128']:.2f}x at 1x128, "
        f"{summary['speedup_32x64']:.2f}x at 32x64"
    )
    print(
        "pruned checkpoint loaded with plain AutoModelForSequenceClassification.from_pretrained vs the "
        f"stage's own model: max |Δlogit| {reload_diff:.2e} over 256 test rows"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def plain_reload_difference(folder: Path, texts: list[str], max_length: int) -> float:
    """Logits of the pruned checkpoint loaded by plain transformers vs the stage's own recorded
    reload path (compress.models.loading.load_classifier), on real rows."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from compress.models.loading import load_classifier

    plain = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    ours = load_classifier(folder)
    batch = AutoTokenizer.from_pretrained(folder)(
        texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        return float((plain(**batch).logits - ours(**batch).logits).abs().max())


if __name__ == "__main__":
    sys.exit(main())
