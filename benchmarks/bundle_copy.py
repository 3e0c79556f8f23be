"""What independent bundles cost: a recipe's target folders written into a bundle by copy (what
compress does: reflink where the filesystem has them, else a plain copy) against the hard links
bundles used before (which made every bundle share the cache's inodes).

    python -m benchmarks.bundle_copy recipes/sst2-minilm.toml [--rounds 5]

Runs the recipe first (cached), then times each way on the bundle's model folders, rounds
interleaved. Prints one table and writes benchmarks/results/bundle_copy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def main() -> int:
    from compress.core.environment import cpu_info
    from compress.core.progress import Reporter
    from compress.output.bundle import _copy_file
    from compress.pipeline import runner
    from compress.recipe.load import load_recipe

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bundle_copy")
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bundle_copy.json"))
    args = parser.parse_args()
    outcome = runner.run(load_recipe(args.recipe), reporter=Reporter(quiet=True))
    folders = sorted(p for p in (outcome.bundle / "targets").iterdir() if p.is_dir())
    total = sum(f.stat().st_size for folder in folders for f in folder.rglob("*") if f.is_file())

    def hard_link(src: str, dst: str) -> None:
        os.link(src, dst)

    ways = {"copy (reflink where possible)": _copy_file, "hard link (before)": hard_link}
    times: dict[str, list[float]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory(dir=outcome.bundle.parent) as scratch:  # same filesystem
        for round_ in range(args.rounds):
            for name, copy in ways.items():
                dst = Path(scratch) / f"{round_}-{len(times[name])}-{name[:4]}"
                started = time.perf_counter()
                for folder in folders:
                    shutil.copytree(folder, dst / folder.name, copy_function=copy)
                times[name].append(time.perf_counter() - started)
                shutil.rmtree(dst)
    rows = {name: round(statistics.median(t) * 1000, 1) for name, t in times.items()}
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": f"python -m benchmarks.bundle_copy {args.recipe} --rounds {args.rounds}",
        "cpu": cpu_info()["model"],
        "recipe": str(args.recipe),
        "target_folders": [f.name for f in folders],
        "megabytes": round(total / 1e6, 1),
        "median_ms": rows,
        "run_seconds": load_manifest_seconds(outcome.bundle),
    }
    print(f"{args.recipe}: {len(folders)} target folders, {result['megabytes']} MB ({result['cpu']})")
    for name, ms in rows.items():
        print(f"  {name:32} {ms:>8.1f} ms")
    print(f"  the whole run took {result['run_seconds']} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def load_manifest_seconds(bundle: Path) -> float:
    return json.loads((bundle / "manifest.json").read_text())["seconds"]


if __name__ == "__main__":
    sys.exit(main())
