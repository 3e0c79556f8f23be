"""Run a recipe from scratch (no cache) and report what it reached, for the README's figures.

    python -m benchmarks.run_recipe recipes/sst2-minilm.toml [--json benchmarks/results/NAME.json]

Prints one table (per target: accuracy, macro-F1, latency, size; training throughput; wall time)
and writes the same as JSON with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/<recipe stem>.json")
    args = parser.parse_args()
    out_json = args.json or Path("benchmarks/results") / f"{args.recipe.stem}.json"
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "compress", "run", str(args.recipe), "--out", out, "--no-cache", "-q"]
        )
        wall = time.perf_counter() - started
        latest = next(Path(out).glob("*/latest"))
        manifest = json.loads((latest / "manifest.json").read_text())
    finetune = next((s for s in manifest["stages"] if s["name"] == "finetune"), {})
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": f"python -m benchmarks.run_recipe {args.recipe}",
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 1),
        "cpu": manifest["environment"]["cpu"],
        "versions": {k: manifest["environment"][k] for k in ("torch", "transformers", "onnxruntime")},
        "finetune": {
            k: finetune.get("metrics", {}).get(k)
            for k in ("train_rows", "amp", "train_seconds", "rows_per_second", "best_dev_accuracy")
        },
        "stage_seconds": {s["name"]: s.get("seconds") for s in manifest["stages"]},
        "targets": [
            {
                "name": t["name"],
                "accuracy": t.get("accuracy"),
                "macro_f1": t.get("macro_f1"),
                "latency_ms": (t.get("latency") or {}).get("median_ms"),
                "shape": t["budgets"]["latency_shape"],
                "size_mb": t.get("size_mb"),
                "verdict": t["verdict"],
            }
            for t in manifest["targets"]
        ],
        "verdict": manifest["verdict"],
    }
    print(f"{args.recipe}  ({result['cpu']['model']}, {result['date']})")
    print(f"{'target':24} {'accuracy':>9} {'macro-F1':>9} {'latency ms':>11} {'shape':>7} {'MB':>7} verdict")
    for t in result["targets"]:
        print(
            f"{t['name']:24} {t['accuracy']:>9.4f} {t['macro_f1']:>9.4f} {t['latency_ms']:>11.1f} "
            f"{t['shape']:>7} {t['size_mb']:>7.1f} {t['verdict']}"
        )
    ft = result["finetune"]
    print(
        f"fine-tune: {ft['train_rows']} rows, {ft['amp']}, {ft['train_seconds']} s "
        f"({ft['rows_per_second']} rows/s); whole run {result['wall_seconds']} s; exit {proc.returncode}"
    )
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
