"""INT8 for ONNX Runtime: fuse the FP32 graph, then one INT8 build per CPU family the targets name.

The build itself (scheme per ISA, calibration, fallback, shape check) is compress.quantization,
shared with the engine stage; this stage chooses the builds and names what each serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compress.core.artifact import NewArtifact
from compress.core.stage import StageContext, StageResult
from compress.quantization.build import build, preparing
from compress.quantization.isa import resolve_isa
from compress.quantization.onnxrt import scheme_for
from compress.recipe.schema import QuantizeSpec, Recipe, Target


def isa_builds(targets: Sequence[Target], default_isa: str) -> dict[str, list[str]]:
    """Resolved ISA -> the onnxruntime/int8 targets served by that build (one build per ISA)."""
    builds: dict[str, list[str]] = {}
    for t in targets:
        if (t.runtime, t.precision) == ("onnxruntime", "int8"):
            builds.setdefault(resolve_isa(t.isa or default_isa), []).append(t.name)
    return builds or {resolve_isa(default_isa): []}


def reads(recipe: Recipe) -> dict:
    """Part of this stage's cache key: the builds its INT8 targets ask for (resolved on this CPU)."""
    default = recipe.quantize.isa if recipe.quantize is not None else "auto"
    return {"builds": isa_builds(recipe.targets, default)}


def run(ctx: StageContext[QuantizeSpec]) -> StageResult:
    """Every ISA's INT8 model from one fused graph and one set of FP32 answers on dev."""
    spec = ctx.spec
    builds = isa_builds(ctx.recipe.targets, spec.isa)
    made: list[NewArtifact] = []
    metrics: dict[str, Any] = {"builds": {}}
    failures: list[str] = []
    with preparing(
        ctx.inputs["onnx"].path,
        fuse_graph=spec.fuse,
        static=spec.mode == "static",
        calibration_rows=spec.calibration_rows,
        dev=ctx.splits.dev,
        max_length=ctx.recipe.data.max_length,
        work=ctx.out_dir,
        progress=ctx.progress,
    ) as prepared:
        for isa, served in builds.items():
            folder = "onnx" if len(builds) == 1 else f"onnx-{isa}"
            scheme = scheme_for(
                isa,
                mode=spec.mode,
                per_channel=spec.per_channel,
                op_types=spec.op_types,
                weight_only_fallback=spec.weight_only_fallback,
            )
            build_metrics, build_failures = build(
                prepared,
                scheme,
                spec,
                table="quantize",
                dev=ctx.splits.dev,
                test=ctx.splits.test,
                out=ctx.out_dir / folder,
                progress=ctx.progress,
            )
            build_metrics["targets"] = served
            metrics["builds"][isa] = build_metrics
            failures += [f"{isa}: {f}" if len(builds) > 1 else f for f in build_failures]
            made.append(NewArtifact("onnx", "onnxruntime", "int8", folder, serves=tuple(served)))
    native = resolve_isa("auto")
    metrics["notes"] = [
        note
        for isa, m in metrics["builds"].items()
        for note in m["notes"]
        + ([f"{isa} build: latency measured on this {native} machine"] if isa != native else [])
    ]
    return StageResult(artifacts=made, metrics=metrics, failure="; ".join(failures) or None)
