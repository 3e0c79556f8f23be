import dataclasses

from compress.output.plots import ArtifactPoint, budget_lines, pareto_points, write_pareto
from tests import factories


def artifact(label, accuracy, ms, size):
    return ArtifactPoint(
        label=label, accuracy=accuracy, macro_f1=accuracy, latency_ms={"1x128": ms}, size_mb=size
    )


def target(name, baseline, drop, latency=None, shape="1x128"):
    budgets = {"max_accuracy_drop": drop, "max_latency_ms": latency, "latency_shape": shape}
    return factories.target(name, baseline=baseline, budgets=budgets)


def test_points_and_budget_lines():
    points = pareto_points(
        [artifact("a", 0.9, 10, 90), dataclasses.replace(artifact("b", 0.8, 1, 1), latency_ms={})], "accuracy"
    )
    assert points == [{"label": "a", "metric": 0.9, "latency_ms": 10, "size_mb": 90}]
    floors, ceilings = budget_lines(
        [target("fp32", 0.9, 0.5, 100), target("int8", 0.9, 0.5, 50, shape="8x64"), target("t", 0.9, 1.0)]
    )
    assert floors == {0.895: ["fp32", "int8"], 0.89: ["t"]}
    assert ceilings == {100: ["fp32"]}  # a budget at another shape is not on this axis


def test_pareto_png_is_written(tmp_path):
    path = tmp_path / "pareto.png"
    write_pareto(
        path,
        [artifact("a", 0.9, 10, 90), artifact("b", 0.89, 4, 23)],
        [target("t", 0.9, 1.0, 50)],
        "accuracy",
        "t",
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
