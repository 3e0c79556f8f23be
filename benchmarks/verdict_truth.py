"""Does the accuracy gate tell the truth, on real weights? The default recipe's fine-tuned MiniLM,
graded Gaussian noise on every weight tensor, and for each level many seeded test-set-sized samples
judged by compress's own judge (`pipeline.judge.judge`, the code a run uses); the truth is the paired
drop on a pool of ~15,600 SST-2 rows the recipe never trained on (the train rows `train_rows` left
out; dev picks checkpoints, test gates).

    python -m benchmarks.verdict_truth [recipes/sst2-minilm.toml] [--samples 50] [--budget 1.0]

Each sample is 872 rows drawn from the pool (the GLUE validation set's size); the sample's pool is
the rest, drawn 872 rows at a time, as a recipe with [evaluation.pool] draws it. For every level and
decision it counts pass / fail / inconclusive, false passes (the run passes although the true drop is
over the budget) and false fails (a conclusive fail although the true drop is within it). Decisions:
- `default`: what the default recipe runs: 95% interval, on_inconclusive = "fail", and the pool
  ([evaluation.pool] unused_train = true): each look at the Bonferroni-corrected confidence;
- `default, no pool`: the same gate for a recipe without a pool: the test rows alone decide;
- `on_inconclusive = pass`: as `default, no pool`, but an inconclusive gate lets the run pass;
- `confidence = 0.99` and `confidence = 0.99, no pool`: a 99% interval;
- `point (before)`: the gate before three outcomes: the measured drop against the budget.

Prints one table and writes benchmarks/results/verdict_truth.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

LEVELS = [0.0, 0.1, 0.15, 0.2, 0.22, 0.24, 0.26, 0.28, 0.3, 0.32, 0.35, 0.4]  # x each tensor's std
TEST_ROWS = 872  # the GLUE SST-2 validation set's size
# name -> (confidence, on_inconclusive, pool drawn)
DECISIONS: dict[str, tuple[float, str, bool]] = {
    "default": (0.95, "fail", True),
    "default, no pool": (0.95, "fail", False),
    "on_inconclusive = pass": (0.95, "pass", False),
    "confidence = 0.99": (0.99, "fail", True),
    "confidence = 0.99, no pool": (0.99, "fail", False),
}
POINT = "point (before)"


def judge_sample(labels, reference, candidate, sample, rest, budget, seed) -> dict[str, tuple[str, bool]]:
    """(accuracy-gate outcome, whether the run passes) of one sample under each decision, from the
    judge a run uses: the test rows are `sample`, the pool `rest`."""
    from compress.core.records import Evaluation
    from compress.pipeline.judge import Baseline, Candidate, Pool, judge
    from compress.recipe.schema import EvaluationSpec, Target
    from compress.verdict.gates import overall_verdict

    y, r, c = labels[sample], reference[sample], candidate[sample]
    accuracy = float((c == y).mean())
    measured = Evaluation(
        runtime="onnxruntime",
        precision="fp32",
        rows=len(y),
        accuracy=accuracy,
        macro_f1=accuracy,
        latency={},
        size_bytes=0,
    )
    evaluation = EvaluationSpec(seed=seed)
    out = {}
    for decision, (confidence, on_inconclusive, drawn) in DECISIONS.items():
        target = Target(
            name="candidate",
            runtime="onnxruntime",
            precision="fp32",
            max_accuracy_drop=budget,
            confidence=confidence,
            on_inconclusive=on_inconclusive,
        )
        pool = Pool(labels[rest], TEST_ROWS) if drawn else None
        record = judge(
            [target],
            {
                "candidate": Candidate(
                    "noise", "-", measured, c, pool_predictions=candidate[rest] if drawn else None
                )
            },
            Baseline(
                float((r == y).mean()), "reference", r, pool_predictions=reference[rest] if drawn else None
            ),
            evaluation=evaluation,
            labels=y,
            n_labels=2,
            pool=pool,
        ).targets[0]
        accuracy_gate = next(g for g in record.gates if g.gate == "accuracy")
        out[decision] = (accuracy_gate.result, overall_verdict([(True, record.gates)]) == "pass")
    drop = float((r == y).mean() - (c == y).mean()) * 100
    point = "pass" if drop <= budget else "fail"
    out[POINT] = (point, point == "pass")
    return out


def main() -> int:
    from compress.core.artifact import Artifact
    from compress.core.environment import cpu_info
    from compress.core.progress import Reporter
    from compress.data.splits import load_pool
    from compress.evaluation.evaluate import predict_labels
    from compress.pipeline import runner
    from compress.pipeline.perturb import perturb_folder
    from compress.recipe.load import load_recipe
    from compress.recipe.schema import PoolSpec

    parser = argparse.ArgumentParser(prog="python -m benchmarks.verdict_truth")
    parser.add_argument("recipe", type=Path, nargs="?", default=Path("recipes/sst2-minilm.toml"))
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/verdict_truth.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    loaded = load_recipe(args.recipe)
    reporter = Reporter()
    checkpoint = runner.run(loaded, reporter=reporter).artifacts["finetune"][0].path
    pool = load_pool(loaded.recipe.data, PoolSpec(unused_train=True, max_rows=100_000))
    labels = np.asarray(pool.labels)

    def answers(folder: Path) -> np.ndarray:
        artifact = Artifact("checkpoint", "torch", "fp32", folder)
        return predict_labels(
            artifact,
            pool,
            max_length=loaded.recipe.data.max_length,
            batch_size=128,
            progress=reporter,
            label="pool",
        )

    reference = answers(checkpoint)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for level in LEVELS:
            if level == 0:
                candidate = reference.copy()
            else:
                noisy = Path(scratch) / f"noise-{level}"
                perturb_folder(checkpoint, noisy, level, seed=0)
                candidate = answers(noisy)
            true_drop = float(((reference == labels).mean() - (candidate == labels).mean()) * 100)
            counts = {
                d: {"pass": 0, "fail": 0, "inconclusive": 0, "false_pass": 0, "false_fail": 0}
                for d in (*DECISIONS, POINT)
            }
            for s in range(args.samples):
                order = np.random.default_rng(1000 + s).permutation(len(labels))
                sample, rest = order[:TEST_ROWS], order[TEST_ROWS:]
                for decision, (outcome, passes) in judge_sample(
                    labels, reference, candidate, sample, rest, args.budget, seed=s
                ).items():
                    c = counts[decision]
                    c[outcome] += 1
                    c["false_pass"] += passes and true_drop > args.budget
                    c["false_fail"] += outcome == "fail" and true_drop <= args.budget
            for decision in (*DECISIONS, POINT):
                rows.append(
                    {
                        "noise": level,
                        "true_drop": round(true_drop, 3),
                        "decision": decision,
                        **counts[decision],
                    }
                )
            print(f"noise {level:.2f}: true drop {true_drop:+.2f} pt on {len(labels)} pool rows", flush=True)
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": "python -m benchmarks.verdict_truth "
        f"{args.recipe} --samples {args.samples} --budget {args.budget}",
        "cpu": cpu_info()["model"],
        "pool_rows": int(len(labels)),
        "pool_accuracy": round(float((reference == labels).mean()), 4),
        "sample_rows": TEST_ROWS,
        "samples_per_level": args.samples,
        "budget": args.budget,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    print(f"\nbudget {args.budget} pt; {args.samples} samples of {TEST_ROWS} rows per level")
    columns = ("pass", "fail", "inconclusive", "false_pass", "false_fail")
    print(f"{'true drop':>9}  {'decision':28} " + " ".join(f"{c:>12}" for c in columns))
    for r in rows:
        print(f"{r['true_drop']:>+9.2f}  {r['decision']:28} " + " ".join(f"{r[c]:>12}" for c in columns))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
