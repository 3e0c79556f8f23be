"""pareto.png: every artifact of a run on accuracy against latency, with the targets' budgets.

Uses matplotlib's object API with the Agg canvas (no pyplot global state, no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from compress.core.records import TargetRecord

SHAPE = "1x128"  # every artifact is timed at this shape, so all points share one axis


@dataclass(frozen=True)
class ArtifactPoint:
    """An evaluated model of the run: its label in the legend, metrics, latencies, size."""

    label: str
    accuracy: float
    macro_f1: float
    latency_ms: dict[str, float]  # "BxS" -> median ms
    size_mb: float


def pareto_points(artifacts: Sequence[ArtifactPoint], metric: str) -> list[dict]:
    """(label, metric, latency at 1x128, size) per artifact; artifacts without that latency are left out."""
    return [
        {
            "label": a.label,
            "metric": a.accuracy if metric == "accuracy" else a.macro_f1,
            "latency_ms": a.latency_ms[SHAPE],
            "size_mb": a.size_mb,
        }
        for a in artifacts
        if SHAPE in a.latency_ms
    ]


def budget_lines(targets: Sequence[TargetRecord]) -> tuple[dict[float, list[str]], dict[float, list[str]]]:
    """Metric floors (baseline - budget) and latency ceilings at 1x128, each with the targets it binds."""
    floors: dict[float, list[str]] = {}
    ceilings: dict[float, list[str]] = {}
    for t in targets:
        b = t.budgets
        if t.baseline is not None:
            floor = round(t.baseline - b.max_accuracy_drop / 100, 6)
            floors.setdefault(floor, []).append(t.name)
        if b.max_latency_ms is not None and b.latency_shape == SHAPE:
            ceilings.setdefault(b.max_latency_ms, []).append(t.name)
    return floors, ceilings


def write_pareto(
    path: Path, artifacts: Sequence[ArtifactPoint], targets: Sequence[TargetRecord], metric: str, title: str
) -> None:
    """Draw every artifact on accuracy against latency at 1x128, marker area = size, budgets as lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    points = pareto_points(artifacts, metric)
    floors, ceilings = budget_lines(targets)
    fig = Figure(figsize=(8, 5.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    largest = max((p["size_mb"] for p in points), default=1.0) or 1.0
    for i, p in enumerate(points):
        ax.scatter(
            p["latency_ms"],
            p["metric"],
            s=60 + 900 * p["size_mb"] / largest,
            alpha=0.6,
            color=f"C{i % 10}",
            edgecolors="black",
            label=f"{p['label']}: {p['metric']:.4f}, {p['latency_ms']:.1f} ms, {p['size_mb']:.1f} MB",
        )
    for floor, names in sorted(floors.items()):
        ax.axhline(floor, color="red", linestyle="--", linewidth=0.8)
        ax.annotate(
            f"min {metric} ({', '.join(names)})",
            (0.01, floor),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            color="red",
            va="bottom",
        )
    for ceiling, names in sorted(ceilings.items()):
        ax.axvline(ceiling, color="purple", linestyle=":", linewidth=0.8)
        ax.annotate(
            f"max latency ({', '.join(names)})",
            (ceiling, 0.01),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color="purple",
            rotation=90,
            ha="right",
        )
    ax.set_xscale("log")  # latencies differ by factors; budgets can lie far from the points
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"latency at {SHAPE} (ms, median, log scale)")
    ax.set_ylabel(f"{metric} on the test split")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, markerscale=0.4)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
