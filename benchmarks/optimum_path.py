"""Optimum's documented path for a checkpoint, as a user would run it: optimum-onnx export, ORTOptimizer O2,
ORTQuantizer dynamic INT8 with the preset for this CPU's ISA. A step that crashes is a result (a row
with its error), not a benchmark failure."""

from __future__ import annotations

import shutil
import traceback
from pathlib import Path

from benchmarks.rows import Model


def optimum_models(checkpoint: Path, tmp: Path) -> list[Model]:
    """Optimum's path as its documentation shows a user; each step that crashes becomes a row."""
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig

    from compress.quantization.isa import resolve_isa

    isa = resolve_isa("auto")
    preset = getattr(AutoQuantizationConfig, isa)(is_static=False, per_channel=False)
    export, o2 = tmp / "optimum-export", tmp / "optimum-o2"
    model = ORTModelForSequenceClassification.from_pretrained(checkpoint, export=True)
    model.save_pretrained(export)
    out = [Model("Optimum ONNX FP32 (export)", "onnxruntime", "fp32", export, checkpoint, "optimum")]
    steps = [
        ("Optimum O2 FP32", "fp32", o2, "model_optimized.onnx"),
        (
            f"Optimum O2 + dynamic INT8 ({isa})",
            "int8",
            tmp / "optimum-o2-int8",
            "model_optimized_quantized.onnx",
        ),
        (f"Optimum dynamic INT8 ({isa}, plain export)", "int8", tmp / "optimum-int8", "model_quantized.onnx"),
    ]
    for name, precision, folder, produced in steps:
        entry = Model(name, "onnxruntime", precision, folder, checkpoint, "optimum")
        try:
            if name.startswith("Optimum O2 FP32"):
                ORTOptimizer.from_pretrained(export).optimize(
                    save_dir=folder, optimization_config=AutoOptimizationConfig.O2()
                )
            else:
                source, file_name = (o2, "model_optimized.onnx") if "O2" in name else (export, "model.onnx")
                ORTQuantizer.from_pretrained(source, file_name=file_name).quantize(
                    save_dir=folder, quantization_config=preset
                )
            shutil.copy(folder / produced, folder / "model.onnx")  # what compress's loader opens
            copy_tokenizer(checkpoint, folder)
        except Exception as exc:  # a crash in the user's path is a result, reported as a row
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            entry.error, entry.path = last[:300], None
        out.append(entry)
    copy_tokenizer(checkpoint, export)
    return out


def copy_tokenizer(checkpoint: Path, folder: Path) -> None:
    for f in checkpoint.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")) and not (folder / f.name).exists():
            shutil.copy(f, folder / f.name)
