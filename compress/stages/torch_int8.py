"""INT8 for PyTorch: Neural Compressor autotunes static PT2E configs on the checkpoint, scored by the
recipe's metric on dev rows and calibrated on other dev rows; the best is saved as a torch.export
program (`model.pt2`) that `torch.export.load` runs with plain PyTorch.

The portable program runs eagerly in Q/DQ form, which is slow (the INT8 arithmetic is simulated), so
with `aot_inductor` the chosen program is also compiled once by AOTInductor (freezing on) into
`model.aoti.pt2`: a shared library for this CPU that loads without a compiler and that the torch runtime
serves where present. Only the chosen program is compiled (a compile costs tens of seconds), so trials
are scored on the Q/DQ program and the compiled one's dev labels are compared with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compress.core.artifact import NewArtifact
from compress.core.errors import StageFailed
from compress.core.stage import StageContext, StageResult
from compress.data.batches import pad_batch, tokenize
from compress.models.loading import forward_inputs, load_classifier, load_tokenizer
from compress.quantization import neural_compressor as nc
from compress.recipe.schema import TorchInt8Spec
from compress.verdict.metrics import metric

BATCH = 32
FOLDER = "torch-int8"
AOTI = "model.aoti.pt2"


def _batches(ids: list[list[int]], pad_id: int, names: tuple[str, ...]) -> list[tuple[torch.Tensor, ...]]:
    """Rows in batches of BATCH, each padded to its longest row, as tensors in `names` order."""
    out = []
    for i in range(0, len(ids), BATCH):
        batch = pad_batch(ids[i : i + BATCH], pad_id)
        out.append(tuple(torch.from_numpy(batch[n]) for n in names))
    return out


def _predict(fn: Callable[..., torch.Tensor], batches: list[tuple[torch.Tensor, ...]]) -> np.ndarray:
    """Labels for every row of `batches`, in order."""
    with torch.no_grad():
        return np.concatenate([fn(*b).argmax(-1).numpy() for b in batches])


def _aot_compile(
    program: torch.export.ExportedProgram, out: Path, batches, reference: np.ndarray, *, autotune: bool
) -> dict:
    """AOTInductor's package of `program` at out/AOTI, and how far its dev labels stay from `reference`;
    where it cannot be built, why (the portable program is served instead)."""
    configs: dict[str, Any] = {"freezing": True}
    if autotune:
        # Inductor times its C++ GEMM templates (AMX or AVX-512 VNNI u8s8 micro-kernels) against oneDNN's
        # qlinear for each linear layer and keeps the faster. Pruned MiniLM on this project's 2-core Xeon
        # (AMX): 1x128 8.0 -> 4.2 ms, 32x64 43.0 -> 33.9 ms; compile 17.5 -> 30.2 s (2026-11-30,
        # `python -m benchmarks.torch_int8_compile recipes/sst2-minilm-pruned-torch-int8.toml`).
        configs |= {"max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"}
    t0 = time.perf_counter()
    try:
        # Inductor freezes (folds the weights' quantize ops into int8 constants and lowers dequant-matmul-
        # quant to int8 kernels) only with grad off. Built with grad on, the same call made a package
        # that simulates Q/DQ in FP32: for pruned MiniLM 72 MB and 13.4 ms at 1x128, against 57 MB and
        # 8.0 ms under no_grad (same benchmark run).
        # Its autotuning prints tables and its oneDNN lowering a note: kept off compress's output.
        with (
            torch.no_grad(),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(out / AOTI), inductor_configs=configs
            )
        compiled = torch._inductor.aoti_load_package(str(out / AOTI))
        labels = _predict(compiled, batches)
    except Exception as exc:  # no C++ compiler, an op Inductor cannot lower: keep the portable program
        (out / AOTI).unlink(missing_ok=True)
        return {"built": False, "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return {
        "built": True,
        "max_autotune": autotune,
        "seconds": round(time.perf_counter() - t0, 2),
        "int8_gemm_kernels": int8_gemm_kernels(out / AOTI),
        "label_agreement_with_program": float((labels == reference).mean()),
        "dev_labels_sha256": hashlib.sha256(labels.astype(np.int64).tobytes()).hexdigest(),
    }


# the signature of a C++ GEMM template Inductor generated for uint8 activations x int8 weights
_U8S8_TEMPLATE = re.compile(
    r"void (\w*micro_gemm)\(\s*(?:AMXState& amx_state,\s*)?const uint8_t\* __restrict__ A,"
    r"\s*const int8_t\* __restrict__ B"
)


def int8_gemm_kernels(package: Path) -> dict[str, int]:
    """What runs the package's INT8 linear layers: calls of oneDNN's quantized linear in the generated
    wrapper, and the u8s8 GEMM templates Inductor generated (max_autotune). Both 0 means Inductor did
    not lower the Q/DQ pattern and the INT8 model runs as simulated FP32."""
    qlinear = templates = 0
    with zipfile.ZipFile(package) as archive:
        for name in archive.namelist():
            if name.endswith(".cpp"):
                code = archive.read(name).decode(errors="ignore")
                qlinear += code.count("qlinear") if name.endswith("wrapper.cpp") else 0
                templates += len(set(_U8S8_TEMPLATE.findall(code)))
    return {"onednn_qlinear_calls": qlinear, "cpp_u8s8_gemm_templates": templates}


def run(ctx: StageContext[TorchInt8Spec]) -> StageResult:
    """Autotune, save the best program, and prove it reloads to the labels it gave here."""
    spec = ctx.spec
    source = ctx.inputs["checkpoint"].path
    tokenizer = load_tokenizer(source)
    pad_id = tokenizer.pad_token_id or 0
    model = load_classifier(source).float().cpu().eval()
    names = nc.input_names(forward_inputs(model))
    dev = ctx.splits.dev
    ids = tokenize(tokenizer, dev.texts, ctx.recipe.data.max_length)
    n_eval = min(spec.eval_rows or len(ids), len(ids))
    eval_batches = _batches(ids[:n_eval], pad_id, names)
    calibration = _batches(ids[: min(spec.calibration_rows, len(ids))], pad_id, names)
    labels = np.asarray(dev.labels[:n_eval])
    n_labels = int(model.config.num_labels)
    metric_name = ctx.recipe.evaluation.metric

    def evaluate(fn: Callable[..., torch.Tensor]) -> float:
        return metric(metric_name, labels, _predict(fn, eval_batches), n_labels)

    def calibrate(fn: Callable[..., torch.Tensor]) -> None:
        for b in calibration:
            fn(*b)

    example = pad_batch_rows(ids, pad_id, names)
    options: dict[str, list[Any]] = {
        "act_sym": list(spec.act_sym),
        "act_algo": list(spec.act_algo),
        "w_granularity": list(spec.w_granularity),
    }
    with ctx.progress.bar("Neural Compressor autotune (PT2E)", 1) as advance:
        try:
            tuned = nc.tune(
                model,
                names,
                example,
                options=options,
                modes=tuple(dict.fromkeys(spec.modes)),
                evaluate=evaluate,
                calibrate=calibrate,
                max_drop=spec.max_accuracy_drop / 100,
                max_trials=spec.max_trials,
            )
        except RuntimeError as exc:
            raise StageFailed(f"torch_int8: {exc}") from None
        advance()
    out = ctx.out_dir / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    torch.export.save(tuned.program, out / "model.pt2")
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    chosen = max(tuned.trials, key=lambda t: t["dev_metric"]) if tuned.trials else None
    (out / "program.json").write_text(
        json.dumps(
            {
                "format": "torch.export ExportedProgram",
                "load": "import torch.ao.quantization.fx._decomposed; torch.export.load(path).module()",
                "inputs": list(names),
                "dynamic_axes": {"0": "batch", "1": "sequence"},
                "neural_compressor": nc.version(),
                "torch": torch.__version__,
                "config": chosen["config"] if chosen else None,
            },
            indent=2,
        )
        + "\n"
    )
    stage_labels = _predict(tuned.program.module(), eval_batches)
    reloaded = _predict(torch.export.load(out / "model.pt2").module(), eval_batches)
    seconds = {**tuned.seconds, "save": round(time.perf_counter() - t0, 2)}
    aoti = (
        _aot_compile(tuned.program, out, eval_batches, stage_labels, autotune=spec.max_autotune)
        if spec.aot_inductor
        else None
    )
    agreement = float((stage_labels == reloaded).mean())
    metrics = {
        "neural_compressor": nc.version(),
        "dev_rows": n_eval,
        "calibration_rows": min(spec.calibration_rows, len(ids)),
        "baseline_dev_metric": round(tuned.baseline, 6),
        "trials": tuned.trials,
        "chosen_trial": chosen["trial"] if chosen else None,
        "met_on_dev": bool(chosen and chosen["passed"]),
        "seconds": seconds,
        "reload_label_agreement": agreement,
        # the labels the program gave here on the dev rows (int64, in row order): a reload elsewhere
        # can be checked against them
        "dev_labels_sha256": hashlib.sha256(stage_labels.astype(np.int64).tobytes()).hexdigest(),
        "aot_inductor": aoti,
        "served": AOTI if aoti and aoti["built"] else "model.pt2",
    }
    if agreement < 1.0:
        raise StageFailed(
            f"torch_int8: the saved program reloads to other labels ({agreement:.1%} kept)", metrics
        )
    # autotune keeps the best trial even when none met the loss on dev: the stage's budget on the test
    # rows (the stage table's row) and the targets' gates decide, not this
    made = NewArtifact("torch-int8", "torch", "int8", FOLDER)
    return StageResult(artifacts=[made], metrics=metrics)


def pad_batch_rows(ids: list[list[int]], pad_id: int, names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
    """The first two rows (two: a batch of one would fix the batch axis) as tensors in `names` order."""
    rows = ids[:2] if len(ids) >= 2 else ids * 2
    batch = pad_batch(rows, pad_id)
    return tuple(torch.from_numpy(batch[n]) for n in names)
