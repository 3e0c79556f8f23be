"""The training loop shared by fine-tuning and pruning recovery.

Mixed precision (bf16 autocast on CPUs with native bf16; fp16 + GradScaler or bf16 on CUDA), batches
bucketed by length and padded per batch (SST-2 rows are short: padding to max_length would waste most
of the compute), AdamW with warm-up and linear decay, and the best weights by dev accuracy.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable

import numpy as np
import torch

from compress.data import pad_batch
from compress.environment import cpu_has_native_bf16
from compress.recipe import TrainSettings

# (student logits, labels, batch on device) -> loss
LossFn = Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, _batch: dict) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits.float(), labels)


def choose_amp(amp: str, device: str) -> torch.dtype | None:
    """The autocast dtype for `amp` on this device, or None for full FP32."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # CPUs without native bf16 emulate it, which is slower than plain FP32
    return torch.bfloat16 if cpu_has_native_bf16() else None


def length_bucketed_batches(
    lengths: list[int], batch_size: int, rng: random.Random, bucket: bool
) -> list[list[int]]:
    """Shuffled batches of row indices; with `bucket`, rows of similar length share a batch."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if bucket:
        chunk = batch_size * 50  # sort within large shuffled chunks: similar lengths, still random
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda j: lengths[j])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def warmup_linear_decay(total_steps: int, warmup_ratio: float):
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def to_device(batch: dict, device: str) -> dict:
    return {k: torch.from_numpy(v).to(device) for k, v in batch.items()}


def dev_accuracy(model, ids, labels, pad_id, device, autocast) -> float:
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    correct = 0
    with torch.inference_mode(), autocast():
        for start in range(0, len(order), 128):
            rows = order[start : start + 128]
            batch = to_device(pad_batch([ids[i] for i in rows], pad_id), device)
            pred = model(**batch).logits.argmax(-1).cpu().numpy()
            correct += int((pred == np.asarray([labels[i] for i in rows])).sum())
    model.train()
    return correct / len(ids)


def autocast_for(device: str, amp_dtype: torch.dtype | None):
    """A factory of autocast contexts (a fresh context per use)."""

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device, dtype=amp_dtype)

    return autocast


def train_classifier(
    model,
    *,
    settings: TrainSettings,
    train_ids: list[list[int]],
    train_labels: list[int],
    dev_ids: list[list[int]],
    dev_labels: list[int],
    pad_id: int,
    device: str,
    progress,
    label: str,
    loss_fn: LossFn = cross_entropy,
) -> dict:
    """Train `model` in place and leave it holding its best weights by dev accuracy; return metrics."""
    amp_dtype = choose_amp(settings.amp, device)
    autocast = autocast_for(device, amp_dtype)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    lengths = [len(r) for r in train_ids]

    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": settings.weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    # the fused kernel: on a 2-core CPU the unfused step costs as much as the backward pass
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, fused=True)
    steps_per_epoch = math.ceil(len(train_ids) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear_decay(total_steps, settings.warmup_ratio)
    )
    scaler = torch.amp.GradScaler(device) if amp_dtype == torch.float16 else None

    eval_every = max(1, steps_per_epoch // settings.evals_per_epoch)
    best_acc, best_state, best_step, history = -1.0, None, 0, []
    step, started, loss_avg = 0, time.perf_counter(), None
    model.train()
    with progress.bar(label, total_steps) as advance:
        for _epoch in range(settings.epochs):
            for rows in length_bucketed_batches(lengths, settings.batch_size, rng, settings.bucket_by_length):
                batch = to_device(pad_batch([train_ids[i] for i in rows], pad_id), device)
                labels = torch.tensor([train_labels[i] for i in rows], device=device)
                with autocast():
                    loss = loss_fn(model(**batch).logits, labels, batch)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if settings.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                step += 1
                loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
                if step % eval_every == 0 or step == total_steps:
                    acc = dev_accuracy(model, dev_ids, dev_labels, pad_id, device, autocast)
                    history.append({"step": step, "dev_accuracy": round(acc, 6)})
                    if acc > best_acc:
                        best_acc, best_step = acc, step
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    advance(loss=f"{loss_avg:.3f}", dev_acc=f"{acc:.4f}")
                else:
                    advance(loss=f"{loss_avg:.3f}")
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    model.eval()
    return {
        "device": device,
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
        "train_rows": len(train_ids),
        "steps": total_steps,
        "train_seconds": round(seconds, 2),
        "rows_per_second": round(len(train_ids) * settings.epochs / seconds, 1),
        "best_step": best_step,
        "best_dev_accuracy": round(best_acc, 6),
        "dev_history": history,
    }
