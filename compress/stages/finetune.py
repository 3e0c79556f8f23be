"""Fine-tune the classifier with mixed precision; keep the best checkpoint by dev accuracy.

Throughput is the budget on a CPU, so batches are bucketed by length and padded per batch
(SST-2 sentences are mostly short: padding to max_length would waste most of the compute).
"""

from __future__ import annotations

import contextlib
import math
import random
import time

import numpy as np
import torch

from compress.data import pad_batch, tokenize
from compress.environment import cpu_has_native_bf16
from compress.modeling import load_classifier, load_tokenizer, save_classifier
from compress.stages import NewArtifact, StageContext, StageResult


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


def _to_device(batch: dict, device: str) -> dict:
    return {k: torch.from_numpy(v).to(device) for k, v in batch.items()}


def dev_accuracy(model, ids, labels, pad_id, device, autocast) -> float:
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    correct = 0
    with torch.inference_mode(), autocast():
        for start in range(0, len(order), 128):
            rows = order[start : start + 128]
            batch = _to_device(pad_batch([ids[i] for i in rows], pad_id), device)
            pred = model(**batch).logits.argmax(-1).cpu().numpy()
            correct += int((pred == np.asarray([labels[i] for i in rows])).sum())
    model.train()
    return correct / len(ids)


def run(ctx: StageContext) -> StageResult:
    spec = ctx.spec
    source = ctx.inputs["checkpoint"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    amp_dtype = choose_amp(spec.amp, device)
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)

    tokenizer = load_tokenizer(source.path)
    model = load_classifier(source.path).to(device).train()
    pad_id = tokenizer.pad_token_id or 0
    max_length = ctx.recipe.data.max_length
    train, dev = ctx.splits["train"], ctx.splits["dev"]
    train_ids = tokenize(tokenizer, train.texts, max_length)
    dev_ids = tokenize(tokenizer, dev.texts, max_length)
    lengths = [len(r) for r in train_ids]

    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
            "weight_decay": spec.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    # the fused kernel: on a 2-core CPU the unfused step costs as much as the backward pass
    optimizer = torch.optim.AdamW(groups, lr=spec.learning_rate, fused=True)
    steps_per_epoch = math.ceil(len(train_ids) / spec.batch_size)
    total_steps = steps_per_epoch * spec.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear_decay(total_steps, spec.warmup_ratio)
    )
    scaler = torch.amp.GradScaler(device) if amp_dtype == torch.float16 else None

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device, dtype=amp_dtype)

    eval_every = max(1, steps_per_epoch // spec.evals_per_epoch)
    best_acc, best_state, best_step, history = -1.0, None, 0, []
    step, started, loss_avg = 0, time.perf_counter(), None
    with ctx.progress.bar("fine-tune", total_steps) as advance:
        for _epoch in range(spec.epochs):
            for rows in length_bucketed_batches(lengths, spec.batch_size, rng, spec.bucket_by_length):
                batch = _to_device(pad_batch([train_ids[i] for i in rows], pad_id), device)
                labels = torch.tensor([train.labels[i] for i in rows], device=device)
                with autocast():
                    loss = torch.nn.functional.cross_entropy(model(**batch).logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if spec.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                step += 1
                loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
                if step % eval_every == 0 or step == total_steps:
                    acc = dev_accuracy(model, dev_ids, dev.labels, pad_id, device, autocast)
                    history.append({"step": step, "dev_accuracy": round(acc, 6)})
                    if acc > best_acc:
                        best_acc, best_step = acc, step
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    advance(loss=f"{loss_avg:.3f}", dev_acc=f"{acc:.4f}")
                else:
                    advance(loss=f"{loss_avg:.3f}")
    seconds = time.perf_counter() - started

    model.load_state_dict(best_state)
    save_classifier(model.float().cpu().eval(), tokenizer, ctx.out_dir / "checkpoint")
    return StageResult(
        artifacts=[NewArtifact("checkpoint", "torch", "fp32", "checkpoint")],
        metrics={
            "device": device,
            "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
            "train_rows": len(train_ids),
            "steps": total_steps,
            "train_seconds": round(seconds, 2),
            "rows_per_second": round(len(train_ids) * spec.epochs / seconds, 1),
            "best_step": best_step,
            "best_dev_accuracy": round(best_acc, 6),
            "dev_history": history,
        },
    )
