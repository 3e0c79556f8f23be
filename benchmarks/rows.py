"""The models `make bench` measures: a row each, and the compress rows read from the recipes' bundles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "torch": "PyTorch"}


@dataclass
class Model:
    name: str
    runtime: str  # "torch" | "torch.compile" | "onnxruntime"
    precision: str  # "fp32" | "int8"
    path: Path | None  # folder with the model (and tokenizer)
    source: Path | None  # the torch checkpoint it was made from (for its MACs and tokenizer)
    family: str  # "pytorch" | "optimum" | "compress"
    error: str | None = None  # the step that made it crashed
    row: dict = field(default_factory=dict)
    pruned: bool = False
    gate: str | None = None  # compress: the target's verdict in its recipe's run
    recipe: str | None = None
    recipe_verdict: str | None = None
    extra: dict = field(default_factory=dict)  # compress: the stage's trial table, compile time


def compress_models(outcomes: list) -> list[Model]:
    """Every CPU-served target of each run's bundle (TensorRT ones need a GPU), each artifact once: the
    first target that holds it names the row. The unpruned torch/fp32 target is the PyTorch FP32 row
    already, so it is left out. `outcomes` are compress.pipeline.runner.RunOutcome."""
    seen: set[str] = set()
    out = []
    for outcome in outcomes:
        manifest = json.loads((outcome.bundle / "manifest.json").read_text())
        stages = {s["name"]: s for s in manifest["stages"]}
        pruned = "prune" in stages
        checkpoint = outcome.artifacts["prune" if pruned else "finetune"][0].path
        for target in manifest["targets"]:
            kind = (target["runtime"], target["precision"])
            if target["runtime"] not in RUNTIME_NAMES or target["artifact_sha256"] in seen:
                continue
            if kind == ("torch", "fp32") and not pruned:
                continue
            seen.add(target["artifact_sha256"])
            name = (
                f"compress {'pruned ' if pruned else ''}{RUNTIME_NAMES[target['runtime']]} "
                f"{target['precision'].upper()} [{target['name']}]"
            )
            model = Model(
                name,
                target["runtime"],
                target["precision"],
                outcome.bundle / target["artifact"],
                checkpoint,
                "compress",
                pruned=pruned,
                gate=target["verdict"],
                recipe=manifest["recipe_name"],
                recipe_verdict=manifest["verdict"],
            )
            metrics = stages.get(target["stage"], {}).get("metrics") or {}
            if "trials" in metrics:
                model.extra["trials"] = metrics["trials"]
                model.extra["served"] = metrics.get("served")
                model.extra["compile"] = metrics.get("aot_inductor")
            out.append(model)
    return out
