"""Where a whole run's time goes: run a recipe cold (no cache) and time every stage and every step in it.

    python -m benchmarks.pipeline [RECIPE] [--label NAME] [--set KEY=VALUE ...]
    python -m benchmarks.pipeline --large-test          # the same with a 7,607-row test split at 128 tokens
    python -m benchmarks.pipeline --compare benchmarks/results/pipeline-before.json \
        benchmarks/results/pipeline-after.json

The steps come from the run's manifest (`stages[].steps`: every progress bar, timed step and artifact
evaluation, with its wall seconds), so this benchmark measures the code `compress run` runs, not a copy
of it. Writes benchmarks/results/pipeline-<label>.json and the run's report.md beside it; `--compare`
prints two such files side by side.
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

DEFAULT_RECIPE = Path("recipes/sst2-minilm-edge.toml")
SST2 = Path("recipes/data/sst2")


def large_test_recipe(recipe: Path, folder: Path, dev_rows: int = 1000) -> Path:
    """`recipe` with a test split the size of a user's (a 4-class news test set has 7,600 rows) at 128
    tokens: test = SST-2's dev.tsv + test.tsv (7,607 rows none of the training reads), dev = the last
    `dev_rows` rows of train.tsv, train = the rows before them. Written into `folder`."""
    header, *train = (SST2 / "train.tsv").read_text().splitlines()
    dev_text, test_text = ((SST2 / name).read_text().splitlines()[1:] for name in ("dev.tsv", "test.tsv"))
    files = {"train": train[:-dev_rows], "dev": train[-dev_rows:], "test": dev_text + test_text}
    for name, rows in files.items():
        (folder / f"{name}.tsv").write_text("\n".join([header, *rows]) + "\n")
    large = folder / f"{recipe.stem}-large-test.toml"
    large.write_text(
        f'extends = "{recipe.resolve()}"\n\n[data]\n'
        + "".join(f'{name} = "{folder / name}.tsv"\n' for name in files)
        + "max_length = 128\ndev_rows = 1000\n"
    )
    return large


def measure(recipe: Path, overrides: list[str], large_test: bool = False) -> dict:
    """Run `recipe` from an empty cache into a scratch folder; its stages, steps, targets and wall time."""
    with tempfile.TemporaryDirectory() as out:
        described, test_rows = f"{recipe}{' --large-test' if large_test else ''}", None
        if large_test:
            recipe = large_test_recipe(recipe, Path(out))
            test_rows = len((Path(out) / "test.tsv").read_text().splitlines()) - 1
        command = [sys.executable, "-m", "compress", "run", str(recipe), "--out", out, "--no-cache", "-q"]
        for item in overrides:
            command += ["--set", item]
        if large_test:  # the recipe extends one in the repository from a scratch folder
            command.append("--allow-outside")
        started = time.perf_counter()
        proc = subprocess.run(command)
        wall = time.perf_counter() - started
        latest = next(Path(out).glob("*/latest"), None)
        if latest is None:
            raise SystemExit(f"{recipe}: the run wrote no bundle (exit {proc.returncode})")
        manifest = json.loads((latest / "manifest.json").read_text())
        report = (latest / "report.md").read_text()
    return {
        "report_md": report,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.pipeline", described, *(f"--set {o}" for o in overrides)]),
        "test_rows": test_rows,
        "exit_code": proc.returncode,
        "verdict": manifest["verdict"],
        "wall_seconds": round(wall, 1),
        "cpu": manifest["environment"]["cpu"],
        "stages": [
            {
                "name": s["name"],
                "status": s["status"],
                "reason": s.get("reason"),
                "seconds": s.get("seconds"),
                "build_seconds": s.get("run_seconds"),
                "steps": [{"step": name, "seconds": seconds} for name, seconds in s.get("steps", [])],
            }
            for s in manifest["stages"]
        ],
        "targets": [
            {"name": t["name"], "accuracy": t.get("accuracy"), "verdict": t["verdict"]}
            for t in manifest["targets"]
        ],
    }


def print_run(result: dict) -> None:
    print(f"{result['command']}  ({result['cpu']['model']}, {result['date']})")
    print(f"{'stage / step':58} {'seconds':>9}")
    for stage in result["stages"]:
        print(f"{stage['name'] + ' (' + stage['status'] + ')':58} {stage['seconds'] or 0:>9.1f}")
        if stage["reason"]:
            print(f"  why: {stage['reason'][:200]}")
        for step in stage["steps"]:
            print(f"  {step['step'][:56]:56} {step['seconds']:>9.1f}")
    for t in result["targets"]:
        print(f"target {t['name']:30} accuracy {t['accuracy'] or 0:.4f}  {t['verdict']}")
    if result["test_rows"]:
        print(f"test split: {result['test_rows']} rows")
    print(
        f"whole run {result['wall_seconds']:.1f} s, exit {result['exit_code']}, verdict {result['verdict']}"
    )


def compare(before: dict, after: dict) -> list[dict]:
    """Per stage: seconds before, after, and the ratio (stages only one run has show a blank)."""
    names = [s["name"] for s in before["stages"]]
    names += [s["name"] for s in after["stages"] if s["name"] not in names]
    b = {s["name"]: s["seconds"] for s in before["stages"]}
    a = {s["name"]: s["seconds"] for s in after["stages"]}
    rows = [{"stage": n, "before": b.get(n), "after": a.get(n)} for n in names]
    rows.append({"stage": "whole run", "before": before["wall_seconds"], "after": after["wall_seconds"]})
    for row in rows:
        row["speedup"] = round(row["before"] / row["after"], 2) if row["before"] and row["after"] else None
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe", type=Path, nargs="?", default=DEFAULT_RECIPE)
    parser.add_argument("--label", default="run", help="results file: benchmarks/results/pipeline-LABEL.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--large-test", action="store_true", help="a 7,607-row test split at 128 tokens")
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        print(f"{'stage':12} {'before s':>10} {'after s':>10} {'speedup':>8}")
        for row in compare(before, after):
            cells = [f"{row[k]:>10.1f}" if row[k] is not None else f"{'-':>10}" for k in ("before", "after")]
            ratio = f"{row['speedup']:>7.2f}x" if row["speedup"] else f"{'-':>8}"
            print(f"{row['stage']:12} {' '.join(cells)} {ratio}")
        return 0
    result = measure(args.recipe, args.overrides, args.large_test)
    print_run(result)
    out = Path("benchmarks/results") / f"pipeline-{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({k: v for k, v in result.items() if k != "report_md"}, indent=1) + "\n")
    out.with_suffix(".report.md").write_text(result["report_md"])  # what the run's bundle said
    print(f"wrote {out}")
    return result["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
