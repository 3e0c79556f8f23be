"""What the torch/int8 target's compile settings are worth: the recipe's Neural Compressor program
(`model.pt2`) run eagerly (Q/DQ simulated in FP32), and compiled by AOTInductor with freezing three
ways: with autograd on (what the torch_int8 stage did before: Inductor then leaves the Q/DQ pattern
alone), with it off (the int8 lowering), and off with `max_autotune` (Inductor's C++ INT8 GEMM
templates timed against oneDNN per layer). Models take turns at 1x128 and 32x64.

    python -m benchmarks.torch_int8_compile recipes/sst2-minilm-pruned-torch-int8.toml [--rounds 20]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import interleaved_latency, prepare

VARIANTS = {  # name -> (grad enabled while compiling, Inductor configs)
    "AOTInductor, grad on": (True, {"freezing": True}),
    "AOTInductor, grad off": (False, {"freezing": True}),
    "AOTInductor, grad off, max_autotune": (
        False,
        {"freezing": True, "max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"},
    ),
}


def main() -> int:
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers the Q/DQ ops the program calls)

    from compress.stages.torch_int8 import int8_gemm_kernels

    run = prepare("torch_int8_compile", 20, ("torch_int8",))
    folder = run.outcome.artifacts["torch_int8"][0].path
    names = json.loads((folder / "program.json").read_text())["inputs"]
    program = torch.export.load(folder / "model.pt2")
    predictors = {"program run eagerly (Q/DQ)": predictor_of(program.module(), names)}
    rows: dict[str, dict] = {
        "program run eagerly (Q/DQ)": {"mb": round((folder / "model.pt2").stat().st_size / 1e6, 1)}
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, (grad, configs) in VARIANTS.items():
            package = Path(tmp) / f"{len(rows)}.pt2"
            run.reporter.info(f"compiling: {name}")
            started = time.perf_counter()
            with torch.set_grad_enabled(grad):
                torch._inductor.aoti_compile_and_package(
                    program, package_path=str(package), inductor_configs=configs
                )
            rows[name] = {
                "compile_s": round(time.perf_counter() - started, 1),
                "mb": round(package.stat().st_size / 1e6, 1),
                "int8_gemm_kernels": int8_gemm_kernels(package),
            }
            predictors[name] = predictor_of(torch._inductor.aoti_load_package(str(package)), names)
        for batch, seq in ((1, 128), (32, 64)):
            rounds = run.args.rounds if batch == 1 else max(5, run.args.rounds // 3)
            for name, times in interleaved_latency(predictors, batch, seq, rounds).items():
                rows[name][f"{batch}x{seq}_ms"] = round(float(np.median(times)), 2)
    lines = [
        f"`python -m benchmarks.torch_int8_compile {run.args.recipe}` ({folder.name} of that run)",
        "",
        "| variant | compile s | MB | int8 GEMM kernels | 1x128 ms | 32x64 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        kernels = r.get("int8_gemm_kernels")
        kernel_text = ", ".join(f"{k} {v}" for k, v in kernels.items()) if kernels else "—"
        lines.append(
            f"| {name} | {r.get('compile_s', '—')} | {r['mb']} | {kernel_text} | "
            f"{r['1x128_ms']} | {r['32x64_ms']} |"
        )
    print("\n" + "\n".join(lines))
    run.args.json.parent.mkdir(parents=True, exist_ok=True)
    run.args.json.write_text(json.dumps({"recipe": str(run.args.recipe), "variants": rows}, indent=2) + "\n")
    print(f"\nwrote {run.args.json}")
    return 0


def predictor_of(module, names: list[str]):
    """`predict(batch) -> logits` for a program module or a loaded package, fed the inputs in order."""
    import torch

    def predict(batch: dict) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.from_numpy(batch[n]) for n in names)).float().numpy()

    return predict


if __name__ == "__main__":
    sys.exit(main())
