"""compress's INT8 vs FP32 ONNX vs ONNX Runtime's plain `quantize_dynamic`, side by side in one process.

    python -m benchmarks.quantize recipes/sst2-minilm-int8.toml \
        [--pruned recipes/sst2-minilm-pruned-int8.toml] [--rounds 60] [--json PATH]

Runs the recipe (reusing its cache), quantizes the same FP32 ONNX model with plain
`quantize_dynamic` (QInt8 weights, defaults, as its documentation shows a user), evaluates all of
them on the test split and times them at 1x128 and 32x64 with repeats interleaved. With `--pruned`,
that recipe's pruned FP32 and pruned INT8 models join the same table and timing rounds. Each INT8
model is also compared with its FP32 model at batch x sequence 1x16, 1x128, 8x64 and 32x256, on
every test row.

The speedups issue #5 asks for are measured in pairs (`benchmarks.gemm.paired_speedup`: the two
models alternate call by call) and printed against their targets. Sessions do not spin-wait, so
one model's idle threads do not hold the cores the next one needs (see benchmarks.alternatives).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.common import folder_beside, interleaved_latency, prepare
from benchmarks.gemm import paired_speedup
from compress.recipe.schema import Shape

# before onnxruntime or torch load their thread pools
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# issue #5's figures: (candidate, reference, batch, sequence, at least this many times faster)
TARGETS = [
    ("compress INT8", "FP32 ONNX", 1, 128, 2.0),
    ("compress INT8", "plain quantize_dynamic", 1, 128, 1.3),
    ("compress INT8", "plain quantize_dynamic", 32, 64, 1.3),
    # what the fallback's FP32 layers cost: the same graph with every layer INT8
    ("compress INT8, no fallback", "plain quantize_dynamic", 1, 128, 1.3),
    ("compress INT8, no fallback", "plain quantize_dynamic", 32, 64, 1.3),
    ("compress pruned + INT8", "FP32 ONNX", 1, 128, 4.0),
]

SHAPES = [Shape(1, 16), Shape(1, 128), Shape(8, 64), Shape(32, 256)]


def all_int8(fp32_folder: Path, out: Path, spec) -> Path:
    """The quantize stage's graph (fused, slow fusions split) and settings, every layer INT8."""
    from compress.quantization.isa import resolve_isa
    from compress.quantization.onnxrt import fuse, quantize, scheme_for

    folder_beside(fp32_folder, out)
    fuse(fp32_folder / "model.onnx", out / "fused.onnx")
    scheme = scheme_for(
        resolve_isa(spec.isa), mode=spec.mode, per_channel=spec.per_channel, op_types=spec.op_types
    )
    quantize(out / "fused.onnx", out / "model.onnx", scheme, method=spec.calibration)
    (out / "fused.onnx").unlink()
    return out


def main() -> int:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from compress.core.artifact import Artifact
    from compress.core.environment import cpu_info
    from compress.evaluation.shapes import shape_matrix
    from compress.models.loading import load_tokenizer
    from compress.pipeline import runner
    from compress.recipe.load import load_recipe
    from compress.runtimes import onnxruntime_predictor

    def more(parser):
        parser.add_argument("--pruned", type=Path, help="a recipe with [prune] and [quantize]")
        parser.add_argument("--pair-rounds", type=int, default=60, help="alternating calls per pair")

    run = prepare("quantize", rounds=60, needs=("export", "quantize"), add_arguments=more)
    args = run.args
    fp32 = run.outcome.artifacts["export"][0]
    ours = run.outcome.artifacts["quantize"][0]
    int8_of = {"compress INT8": "FP32 ONNX"}
    pruned = {}
    if args.pruned:
        outcome = runner.run(load_recipe(args.pruned), reporter=run.reporter)
        pruned = {
            "pruned FP32 ONNX": outcome.artifacts["export"][0],
            "compress pruned + INT8": outcome.artifacts["quantize"][0],
        }
        int8_of["compress pruned + INT8"] = "pruned FP32 ONNX"

    with tempfile.TemporaryDirectory() as tmp:
        plain_dir = folder_beside(fp32.path, Path(tmp) / "plain")
        quantize_dynamic(
            str(fp32.path / "model.onnx"), str(plain_dir / "model.onnx"), weight_type=QuantType.QInt8
        )
        every_layer = all_int8(fp32.path, Path(tmp) / "all-int8", run.loaded.recipe.quantize)
        int8_of["compress INT8, no fallback"] = "FP32 ONNX"
        models = {
            "FP32 ONNX": fp32,
            "plain quantize_dynamic": Artifact("onnx", "onnxruntime", "int8", plain_dir),
            "compress INT8": ours,
            "compress INT8, no fallback": Artifact("onnx", "onnxruntime", "int8", every_layer),
            **pruned,
        }
        rows = {}
        for name, artifact in models.items():
            evaluation = run.evaluate(artifact)
            rows[name] = {"accuracy": evaluation["accuracy"], "mb": round(evaluation["size_bytes"] / 1e6, 1)}
        predictors = {name: onnxruntime_predictor(a.path, spinning=False) for name, a in models.items()}
        tokenizer = load_tokenizer(fp32.path)
        texts = run.splits.test.texts
        matrices = {
            name: {
                shape: r.to_json()
                for shape, r in shape_matrix(
                    predictors[ref], predictors[name], tokenizer, texts, SHAPES, None
                ).items()
            }
            for name, ref in int8_of.items()
        }
        for batch, seq in ((1, 128), (32, 64)):
            for name, t in interleaved_latency(predictors, batch, seq, rounds=args.rounds).items():
                rows[name][f"{batch}x{seq}_ms"] = round(float(np.median(t)), 2)
        pairs = [
            {
                "candidate": cand,
                "reference": ref,
                "shape": f"{batch}x{seq}",
                "target": target,
                **paired_speedup(predictors[ref], predictors[cand], batch, seq, args.pair_rounds),
            }
            for cand, ref, batch, seq, target in TARGETS
            if cand in predictors
        ]

    fp, plain, int8 = rows["FP32 ONNX"], rows["plain quantize_dynamic"], rows["compress INT8"]
    summary = {
        "drop_vs_fp32_points": round((fp["accuracy"] - int8["accuracy"]) * 100, 2),
        "speedup_vs_fp32_1x128": round(fp["1x128_ms"] / int8["1x128_ms"], 2),
        "speedup_vs_plain_dynamic_1x128": round(plain["1x128_ms"] / int8["1x128_ms"], 2),
        "speedup_vs_plain_dynamic_32x64": round(plain["32x64_ms"] / int8["32x64_ms"], 2),
        "paired": pairs,
        "min_label_agreement_across_shapes": {
            name: min(r["label_agreement"] or 0.0 for r in m.values()) for name, m in matrices.items()
        },
    }
    if pruned:
        both = rows["compress pruned + INT8"]
        drop = round((fp["accuracy"] - both["accuracy"]) * 100, 2)
        summary["pruned_int8_drop_vs_unpruned_fp32_points"] = drop
        summary["pruned_int8_speedup_vs_unpruned_fp32_1x128"] = round(fp["1x128_ms"] / both["1x128_ms"], 2)
        summary["pruned_int8_speedup_vs_unpruned_fp32_32x64"] = round(fp["32x64_ms"] / both["32x64_ms"], 2)
    command = f"python -m benchmarks.quantize {args.recipe}" + (f" --pruned {args.pruned}" if pruned else "")
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": f"{command} --rounds {args.rounds} --pair-rounds {args.pair_rounds}",
        "cpu": cpu_info(),
        "threads": os.cpu_count(),
        "models": rows,
        "shape_matrix": matrices,
        "summary": summary,
    }
    print(f"\n{args.recipe} — {result['cpu']['model']}, {result['threads']} threads, {result['date']}")
    print(f"{'model':28} {'accuracy':>9} {'1x128 ms':>9} {'32x64 ms':>9} {'MB':>6}")
    for name, r in rows.items():
        print(f"{name:28} {r['accuracy']:>9.4f} {r['1x128_ms']:>9.2f} {r['32x64_ms']:>9.1f} {r['mb']:>6.1f}")
    print(f"\nlabel agreement with the FP32 model, by batch x sequence ({' / '.join(map(str, SHAPES))}):")
    for name, m in matrices.items():
        print(f"{name:28} " + " / ".join(f"{m[str(s)]['label_agreement'] or 0:.2%}" for s in SHAPES))
    print(
        f"\nINT8 drop {summary['drop_vs_fp32_points']:+.2f} pt; "
        f"{summary['speedup_vs_fp32_1x128']:.2f}x vs FP32 "
        f"at 1x128; vs plain quantize_dynamic {summary['speedup_vs_plain_dynamic_1x128']:.2f}x at 1x128, "
        f"{summary['speedup_vs_plain_dynamic_32x64']:.2f}x at 32x64"
    )
    if pruned:
        print(
            f"pruned + INT8 drop {summary['pruned_int8_drop_vs_unpruned_fp32_points']:+.2f} pt vs unpruned "
            f"FP32; {summary['pruned_int8_speedup_vs_unpruned_fp32_1x128']:.2f}x faster at 1x128, "
            f"{summary['pruned_int8_speedup_vs_unpruned_fp32_32x64']:.2f}x at 32x64"
        )
    print("\npaired (alternating calls; 10-90% of per-round ratios):")
    for p in pairs:
        verdict = "MET" if p["speedup"] >= p["target"] else "NOT MET"
        print(
            f"  {p['candidate']} vs {p['reference']} at {p['shape']}: {p['speedup']:.2f}x "
            f"({p['p10']:.2f}-{p['p90']:.2f}; {p['reference_ms']:.1f} -> {p['candidate_ms']:.1f} ms), "
            f"target >= {p['target']}x: {verdict}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
