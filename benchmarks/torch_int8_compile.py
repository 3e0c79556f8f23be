"""What the torch/int8 target's compile settings are worth: the recipe's Neural Compressor program
(`model.pt2`) run eagerly (Q/DQ simulated in FP32), and compiled by AOTInductor with freezing: with
autograd on (what the torch_int8 stage once did: Inductor then leaves the Q/DQ pattern alone); with it
off (the int8 lowering); with the INT8 linears' GELU and residual adds fused into them
(compress.quantization.inductor); with `max_autotune` (Inductor's C++ INT8 GEMM templates timed against
oneDNN per layer); and with both, which the stage never serves (wrong in torch 2.13: shown so the
reason stays measured). The stage compiles the fused and the autotuned package and serves the faster
at its targets' latency shapes. Models take turns at 1x128 and 32x64; each package's labels on test
rows are compared with the program's.

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

AGREEMENT_ROWS = 256  # test rows each package's labels are compared on


def variants() -> dict[str, tuple[bool, dict]]:
    """name -> (grad enabled while compiling, Inductor configs)."""
    from compress.quantization import inductor

    return {
        "AOTInductor, grad on": (True, {"freezing": True}),
        "AOTInductor, grad off": (False, inductor.configs(autotune=False, fuse_post_ops=False)),
        "grad off, GELU + residual add fused": (False, inductor.configs(autotune=False, fuse_post_ops=True)),
        "grad off, max_autotune": (False, inductor.configs(autotune=True, fuse_post_ops=False)),
        "grad off, max_autotune + post-ops fused (never served)": (
            False,
            inductor.configs(autotune=True, fuse_post_ops=True),
        ),
    }


def main() -> int:
    import torch
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers the Q/DQ ops the program calls)

    from compress.quantization.inductor import int8_gemm_kernels

    run = prepare("torch_int8_compile", 20, ("torch_int8",))
    folder = run.outcome.artifacts["torch_int8"][0].path
    names = json.loads((folder / "program.json").read_text())["inputs"]
    program = torch.export.load(folder / "model.pt2")
    predictors = {"program run eagerly (Q/DQ)": predictor_of(program.module(), names)}
    rows: dict[str, dict] = {
        "program run eagerly (Q/DQ)": {"mb": round((folder / "model.pt2").stat().st_size / 1e6, 1)}
    }
    batches = test_batches(run, folder)
    reference = labels_of(predictors["program run eagerly (Q/DQ)"], batches)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (grad, configs) in variants().items():
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
            rows[name]["labels_kept"] = round(
                float((labels_of(predictors[name], batches) == reference).mean()), 4
            )
        for batch, seq in ((1, 128), (32, 64)):
            rounds = run.args.rounds if batch == 1 else max(5, run.args.rounds // 3)
            for name, times in interleaved_latency(predictors, batch, seq, rounds).items():
                rows[name][f"{batch}x{seq}_ms"] = round(float(np.median(times)), 2)
    lines = [
        f"`python -m benchmarks.torch_int8_compile {run.args.recipe}` ({folder.name} of that run)",
        "",
        f"labels kept: share of the program's labels on {AGREEMENT_ROWS} test rows (batches of 32, padded)",
        "",
        "| variant | compile s | MB | int8 GEMM kernels | labels kept | 1x128 ms | 32x64 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        kernels = r.get("int8_gemm_kernels")
        kernel_text = ", ".join(f"{k} {v}" for k, v in kernels.items()) if kernels else "—"
        lines.append(
            f"| {name} | {r.get('compile_s', '—')} | {r['mb']} | {kernel_text} | "
            f"{r.get('labels_kept', '—')} | {r['1x128_ms']} | {r['32x64_ms']} |"
        )
    print("\n" + "\n".join(lines))
    run.args.json.parent.mkdir(parents=True, exist_ok=True)
    run.args.json.write_text(json.dumps({"recipe": str(run.args.recipe), "variants": rows}, indent=2) + "\n")
    print(f"\nwrote {run.args.json}")
    return 0


def test_batches(run, folder: Path) -> list[dict]:
    """The first AGREEMENT_ROWS test rows, tokenized as the target's tokenizer does, in batches of 32."""
    from compress.data.batches import pad_batch, tokenize
    from compress.models.loading import load_tokenizer

    tokenizer = load_tokenizer(folder)
    ids = tokenize(tokenizer, run.splits.test.texts[:AGREEMENT_ROWS], run.loaded.recipe.data.max_length)
    return [pad_batch(ids[i : i + 32], tokenizer.pad_token_id or 0) for i in range(0, len(ids), 32)]


def labels_of(predict, batches: list[dict]) -> np.ndarray:
    """A predictor's labels for every row of `batches`, in order."""
    return np.concatenate([predict(b).argmax(-1) for b in batches])


def predictor_of(module, names: list[str]):
    """`predict(batch) -> logits` for a program module or a loaded package, fed the inputs in order."""
    import torch

    def predict(batch: dict) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.from_numpy(batch[n]) for n in names)).float().numpy()

    return predict


if __name__ == "__main__":
    sys.exit(main())
