"""What a MatMul costs when the INT8 fallback takes it out of INT8: FP32 against 8-bit weights only.

    python -m benchmarks.fallback_forms recipes/sst2-minilm-int8.toml \
        [--rounds 40] [--pair-rounds 60] [--json PATH]

Runs the recipe (reusing its cache), prepares its FP32 ONNX graph as the quantize stage does (fused, the
slow fusions split) and builds, with the stage's scheme: every layer INT8; every MatMul out of INT8 with
8-bit weights only (MatMulNBits, `compress.quantization.onnxrt.WEIGHT_ONLY_SETTINGS`; attention and
lookups stay INT8); the same MatMuls in FP32. Each is evaluated on the test split (accuracy, size,
labels as the FP32 graph's) and timed at 1x128 and 32x64 taking turns; the weight-only graph is then
paired against the FP32-MatMul one, call by call. Every MatMul at once is the fallback's worst case, so
the per-layer cost of each form reads straight off the table. The fallback keeps the weight-only form
over FP32 wherever it still meets the budget (compress.quantization.fallback) on what this measures.
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

# before onnxruntime loads its thread pools
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SHAPES = ((1, 128), (32, 64))


def main() -> int:
    from compress.core.artifact import Artifact
    from compress.core.environment import cpu_info
    from compress.quantization.build import preparing
    from compress.quantization.isa import resolve_isa
    from compress.quantization.onnxrt import quantizable_layers, quantize, scheme_for
    from compress.runtimes import onnxruntime_predictor

    def more(parser):
        parser.add_argument("--pair-rounds", type=int, default=60, help="alternating calls per pair")

    run = prepare("fallback_forms", rounds=40, needs=("export", "quantize"), add_arguments=more)
    args, spec = run.args, run.loaded.recipe.quantize
    fp32 = run.outcome.artifacts["export"][0]
    scheme = scheme_for(
        resolve_isa(spec.isa), mode=spec.mode, per_channel=spec.per_channel, op_types=spec.op_types
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        preparing(
            fp32.path,
            fuse_graph=spec.fuse,
            static=spec.mode == "static",
            calibration_rows=spec.calibration_rows,
            dev=run.splits.dev,
            max_length=run.loaded.recipe.data.max_length,
            work=Path(tmp) / "work",
            progress=run.reporter,
        ) as prepared,
    ):
        matmuls = tuple(n for n, op in quantizable_layers(prepared.graph, scheme).items() if op == "MatMul")
        forms = {
            "every layer INT8": {},
            f"{len(matmuls)} MatMuls with 8-bit weights only": {"weight_only_layers": matmuls},
            f"{len(matmuls)} MatMuls in FP32": {"fp32_layers": matmuls},
        }
        models = {"FP32 ONNX": fp32}
        for name, layers in forms.items():
            folder = folder_beside(fp32.path, Path(tmp) / name.replace(" ", "-"))
            quantize(
                prepared.graph,
                folder / "model.onnx",
                scheme,
                method=spec.calibration,
                calibration=prepared.calibration,
                **layers,
            )
            models[name] = Artifact("onnx", "onnxruntime", "int8", folder)
        predictors = {name: onnxruntime_predictor(a.path, spinning=False) for name, a in models.items()}
        fp32_labels = None
        rows: dict[str, dict] = {}
        for name, artifact in models.items():
            evaluation = run.evaluate(artifact)
            labels = np.concatenate([predictors[name](b) for b in prepared.dev_batches]).argmax(-1)
            fp32_labels = labels if fp32_labels is None else fp32_labels
            rows[name] = {
                "test_accuracy": evaluation["accuracy"],
                "dev_labels_as_fp32": round(float(np.mean(labels == fp32_labels)), 4),
                "mb": round(evaluation["size_bytes"] / 1e6, 1),
            }
        for batch, seq in SHAPES:
            for name, t in interleaved_latency(predictors, batch, seq, rounds=args.rounds).items():
                rows[name][f"{batch}x{seq}_ms"] = round(float(np.median(t)), 2)
        weight_only, in_fp32 = list(forms)[1:]
        pairs = {
            f"{batch}x{seq}": paired_speedup(
                predictors[in_fp32], predictors[weight_only], batch, seq, args.pair_rounds
            )
            for batch, seq in SHAPES
        }

    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": f"python -m benchmarks.fallback_forms {args.recipe} --rounds {args.rounds} "
        f"--pair-rounds {args.pair_rounds}",
        "cpu": cpu_info(),
        "threads": os.cpu_count(),
        "scheme": {"isa": scheme.isa, "mode": scheme.mode, "per_channel": scheme.per_channel},
        "models": rows,
        "weight_only_vs_fp32_matmuls": pairs,
    }
    print(f"\n{args.recipe} — {result['cpu']['model']}, {result['threads']} threads, {result['date']}")
    print(
        "| graph | test accuracy | dev labels as FP32 | MB | 1x128 ms | 32x64 ms |\n|---|---|---|---|---|---|"
    )
    for name, r in rows.items():
        print(
            f"| {name} | {r['test_accuracy']:.4f} | {r['dev_labels_as_fp32']:.2%} | {r['mb']:.1f} | "
            f"{r['1x128_ms']:.2f} | {r['32x64_ms']:.1f} |"
        )
    print(f"\n{weight_only} against {in_fp32} (alternating calls; 10-90% of per-round ratios):")
    for shape, p in pairs.items():
        print(f"  {shape}: {p['speedup']:.2f}x ({p['p10']:.2f}-{p['p90']:.2f})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
