"""`make bench`'s result as the Markdown it prints and writes: the rows, the paired speedups, each INT8
graph's per-op profile, the torch/int8 trial table, and the goals as MET / NOT MET."""

from __future__ import annotations

SHAPES = ((1, 128), (1, 32), (32, 64))
SPEED_SHAPES = ((1, 128), (32, 64))  # the shapes the goals and the floors are measured at


def markdown(result: dict) -> str:
    cpu = result["cpu"]
    lines = [
        f"Measured {result['date']} on {cpu.get('model', '?')} ({result['threads']} threads), "
        f"`{result['command']}`.",
        "",
        "| model | accuracy | drop pt | 1x128 ms (p90) | 1x32 ms (p90) | 32x64 ms (p90) | rows/s 32x64 "
        "| MB | peak RSS MB | × floor 1x128 | × floor 32x64 | × bare INT8 GEMMs 32x64 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["models"].items():
        if r["error"]:
            lines.append(f"| {name} | crashed: `{r['error']}` | | | | | | | | | | |")
            continue
        shapes = " | ".join(
            f"{r[f'{b}x{s}']['median_ms']:.1f} ({r[f'{b}x{s}']['p90_ms']:.1f})" for b, s in SHAPES
        )
        lines.append(
            f"| {name} | {r['accuracy']:.4f} | {r['drop_points']:+.2f} | {shapes} | "
            f"{r['throughput_32x64_rows_per_s']:.0f} | {r['size_mb']:.1f} | {r.get('peak_rss_mb') or '—'} | "
            f"{r.get('times_floor_1x128', '—')} | {r.get('times_floor_32x64', '—')} | "
            f"{r.get('times_gemm_floor_32x64', '—')} |"
        )
    speed = [f"{b}x{s}" for b, s in SPEED_SHAPES]
    lines += [
        "",
        "Paired speedups (reference time / compress time; median of alternating rounds, 10-90%):",
        "",
        "| pair | " + " | ".join(speed) + " |",
        "|---|" + "---|" * len(speed),
    ]
    for pair, by_shape in result["paired_speedups"].items():
        cells = " | ".join("{speedup:.2f}x ({p10:.2f}-{p90:.2f})".format(**by_shape[s]) for s in speed)
        lines.append(f"| {pair} | {cells} |")
    for name, r in result["models"].items():
        if r.get("op_ms_32x64"):
            total = sum(r["op_ms_32x64"].values())
            top = ", ".join(
                f"{op} {ms:.1f} ms ({ms / total:.0%})" for op, ms in list(r["op_ms_32x64"].items())[:6]
            )
            source = (
                "PyTorch profiler, by kernel kind, of the program's fused oneDNN package"
                if "PyTorch" in name
                else "ONNX Runtime profiler, by op type"
            )
            lines += ["", f"{name}, kernel time at 32x64 ({source}): {top}."]
        if r.get("trials"):
            lines += ["", f"{name}, Neural Compressor autotune trials (dev rows):", ""]
            lines += ["| trial | config | dev metric | drop pt | within budget |", "|---|---|---|---|---|"]
            for trial in r["trials"]:
                config = ", ".join(f"{k}={v}" for k, v in trial["config"].items())
                lines.append(
                    f"| {trial['trial']} | {config} | {trial['dev_metric']:.4f} | "
                    f"{trial['drop_points']:.2f} | {'yes' if trial['passed'] else 'no'} |"
                )
            compiled = r.get("compile") or {}
            lines.append(
                f"\nAOTInductor: {compiled.get('seconds', '—')} s to compile"
                if compiled.get("built")
                else f"\nAOTInductor: not built ({compiled.get('reason', 'off')}); the program serves"
            )
    rates = "; ".join(
        f"{k} {v['gmacs']:.1f}" if "gmacs" in v else f"{k}: none ({v['error']})"
        for k, v in result["gemm_rates_gmacs"].items()
    )
    lines += ["", f"Large-GEMM rates (GMAC/s): {rates}.", "", "| goal | status | measured |", "|---|---|---|"]
    lines += [f"| {g['goal']} | **{g['status']}** | {g['measured']} |" for g in result["goals"]]
    return "\n".join(lines)
