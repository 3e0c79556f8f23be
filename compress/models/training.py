"""The training loop shared by fine-tuning and pruning recovery.

Mixed precision (bf16 autocast on CPUs with native bf16; fp16 + GradScaler or bf16 on CUDA), batches
bucketed by length and padded per batch (SST-2 rows are short: padding to max_length would waste most
of the compute), AdamW with warm-up and linear decay, and the best weights by dev accuracy.

Launched with several processes (see compress.distributed), each batch is shared out row by row and
each process's loss is weighted by its share, so the gradient is that of the whole batch: the recipe's
`batch_size` is the batch per optimizer step however many processes train, and the result matches a
single process up to dropout noise. `gradient_accumulation_steps` splits each process's share into
that many passes (memory), again without changing the gradient.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from dataclasses import dataclass

import numpy as np
import torch

from compress.core.environment import cpu_has_native_bf16
from compress.data.batches import pad_batch
from compress.models import distributed
from compress.models.loading import forward_inputs, only_inputs
from compress.recipe.schema import TrainSettings


class CrossEntropy(torch.nn.Module):
    """Losses are modules, `forward(logits, labels, batch)`, so a job can carry one (with a teacher
    model inside, for distillation) to the other processes and onto their device."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, batch: dict) -> torch.Tensor:
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
    """Accuracy on the dev rows, each process scoring its share of every chunk. Every process makes
    the same number of forward calls (a sharded model needs all of them in each one)."""
    model.eval()
    names = forward_inputs(model)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    correct = 0
    with torch.inference_mode(), autocast():
        for start in range(0, len(order), 128):
            mine = distributed.share(order[start : start + 128])
            rows = mine or order[start : start + 1]  # a stand-in row, not counted
            batch = to_device(only_inputs(pad_batch([ids[i] for i in rows], pad_id), names), device)
            pred = model(**batch).logits.argmax(-1).cpu().numpy()
            if mine:
                correct += int((pred == np.asarray([labels[i] for i in rows])).sum())
    model.train()
    return distributed.all_sum([correct])[0] / len(ids)


def autocast_for(device: str, amp_dtype: torch.dtype | None):
    """A factory of autocast contexts (a fresh context per use)."""

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.split(":")[0], dtype=amp_dtype)

    return autocast


def micro_batches(rows: list[int], steps: int) -> list[list[int]]:
    """`rows` in `steps` consecutive parts (similar lengths stay together); some may be empty."""
    size, extra = divmod(len(rows), steps)
    parts, start = [], 0
    for i in range(steps):
        end = start + size + (i < extra)
        parts.append(rows[start:end])
        start = end
    return parts


@dataclass
class TrainJob:
    """Everything a process needs to train: what rank 0 sends the others."""

    model: torch.nn.Module
    settings: TrainSettings
    train_ids: list[list[int]]
    train_labels: list[int]
    dev_ids: list[list[int]]
    dev_labels: list[int]
    pad_id: int
    loss: torch.nn.Module
    label: str


def train_classifier(
    model,
    *,
    settings: TrainSettings,
    train_ids: list[list[int]],
    train_labels: list[int],
    dev_ids: list[list[int]],
    dev_labels: list[int],
    pad_id: int,
    progress,
    label: str,
    loss_fn: torch.nn.Module | None = None,
) -> dict:
    """Train `model` in place and leave it holding its best weights by dev accuracy (on the CPU or
    this process's device); return metrics. With several processes, they all train it."""
    loss_fn = loss_fn or CrossEntropy()
    job = TrainJob(model, settings, train_ids, train_labels, dev_ids, dev_labels, pad_id, loss_fn, label)
    if distributed.current().size > 1:
        job.model.cpu()  # any rank can unpickle CPU tensors
        job.loss.cpu()
        distributed.send(job)
    with distributed.training():
        return run_job(job, progress)


def serve(progress) -> None:
    """The other ranks: train every job rank 0 sends until it says stop."""
    while (job := distributed.receive()) is not None:
        run_job(job, progress)


def run_job(job: TrainJob, progress) -> dict:
    """Train `job.model` in this process (its share of every batch when several train); leave it
    holding the best weights by dev accuracy; return the training metrics."""
    world = distributed.current()
    settings, device = job.settings, world.device
    model, loss_fn = job.model.to(device), job.loss.to(device)
    amp_dtype = choose_amp(settings.amp, device.split(":")[0])
    autocast = autocast_for(device, amp_dtype)
    torch.manual_seed(settings.seed + world.rank)  # own dropout masks per process; rank 0 as alone
    rng = random.Random(settings.seed)  # the same batches in every process
    lengths = [len(r) for r in job.train_ids]
    trained, sharded = _parallel(model, settings.parallel, world)
    steps_per_epoch = math.ceil(len(job.train_ids) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    optimizer, scheduler = _optimizer(trained, settings, sharded, total_steps)
    scaler = torch.amp.GradScaler(device.split(":")[0]) if amp_dtype == torch.float16 else None
    # the sharded copy must run every forward; the others score through the plain model
    scorer = trained if sharded else model

    eval_every = max(1, steps_per_epoch // settings.evals_per_epoch)
    best_acc, best_state, best_step, history = -1.0, None, 0, []
    step, started, loss_avg = 0, time.perf_counter(), None
    trained.train()
    with progress.bar(job.label, total_steps) as advance:
        for _epoch in range(settings.epochs):
            for rows in length_bucketed_batches(lengths, settings.batch_size, rng, settings.bucket_by_length):
                optimizer.zero_grad(set_to_none=True)
                shown = _backward(job, rows, trained, loss_fn, sharded, autocast, scaler)
                _apply(optimizer, scheduler, scaler, trained, settings.max_grad_norm)
                step += 1
                value = sum(shown) / len(shown) if shown else loss_avg or 0.0
                loss_avg = value if loss_avg is None else 0.95 * loss_avg + 0.05 * value
                if step % eval_every == 0 or step == total_steps:
                    acc = dev_accuracy(scorer, job.dev_ids, job.dev_labels, job.pad_id, device, autocast)
                    history.append({"step": step, "dev_accuracy": round(acc, 6)})
                    if acc > best_acc:  # the same decision in every process: acc is summed over all
                        best_acc, best_step = acc, step
                        best_state = _full_state(model, trained, sharded, world)
                    advance(loss=f"{loss_avg:.3f}", dev_acc=f"{acc:.4f}")
                else:
                    advance(loss=f"{loss_avg:.3f}")
    seconds = time.perf_counter() - started
    if world.is_main and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {
        "device": device,
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
        "processes": world.size,
        "threads_per_process": torch.get_num_threads(),
        "parallel": settings.parallel if world.size > 1 else "none",
        "train_rows": len(job.train_ids),
        "steps": total_steps,
        "train_seconds": round(seconds, 2),
        "rows_per_second": round(len(job.train_ids) * settings.epochs / seconds, 1),
        "best_step": best_step,
        "best_dev_accuracy": round(best_acc, 6),
        "dev_history": history,
    }


def _optimizer(trained, settings: TrainSettings, sharded: bool, total_steps: int):
    """AdamW without weight decay on biases and LayerNorms, warm-up then linear decay."""
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    params = [(n, p) for n, p in trained.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": settings.weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    # the fused kernel: on a 2-core CPU the unfused step costs as much as the backward pass
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, fused=not sharded)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear_decay(total_steps, settings.warmup_ratio)
    )
    return optimizer, scheduler


def _backward(
    job: TrainJob, rows: list[int], trained, loss_fn, sharded: bool, autocast, scaler
) -> list[float]:
    """This process's share of one batch, forward and backward in `gradient_accumulation_steps`
    passes, each weighted so the summed gradient is the whole batch's; the losses to show."""
    world = distributed.current()
    parts = micro_batches(distributed.share(rows), job.settings.gradient_accumulation_steps)
    names = forward_inputs(job.model)
    shown = []
    for j, part in enumerate(parts):
        last = j == len(parts) - 1
        # weighted by its share of the batch, so the summed gradient is the batch mean's
        weight = len(part) * world.size / len(rows)
        if not part:  # every process makes the same passes: a sharded model needs it
            part, weight = rows[:1], 0.0
        with _gradient_sync(trained, world, sharded, last):
            padded = pad_batch([job.train_ids[i] for i in part], job.pad_id)
            batch = to_device(only_inputs(padded, names), world.device)
            labels = torch.tensor([job.train_labels[i] for i in part], device=world.device)
            with autocast():
                loss = loss_fn(trained(**batch).logits, labels, batch)
            scaled = loss * weight if weight != 1.0 else loss
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if weight:
            shown.append(loss.item())
    return shown


def _apply(optimizer, scheduler, scaler, trained, max_grad_norm: float | None) -> None:
    """One optimizer step: unscale (fp16), clip, step, advance the schedule."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(trained.parameters(), max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()


def _parallel(model, parallel: str, world) -> tuple[torch.nn.Module, bool]:
    """The module to train and whether it is a sharded copy. DDP wraps the model (every process
    holds all of it); FSDP shards a copy across processes, block by block (the model's
    `_no_split_modules`, as Accelerate does), and leaves rank 0 the plain model to load the result."""
    if world.size == 1:
        return model, False
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [world.local_rank] if world.device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=ids), False
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    sharded = copy.deepcopy(model)
    mesh = init_device_mesh(world.device.split(":")[0], (world.size,))
    blocks = set(getattr(sharded, "_no_split_modules", None) or ())
    for module in list(sharded.modules()):
        if module is not sharded and type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh)
    fully_shard(sharded, mesh=mesh)
    return sharded, True


def _gradient_sync(trained, world, sharded: bool, sync: bool):
    """Gradients are averaged across processes only on the last pass of a batch."""
    if world.size == 1 or sync:
        if sharded:
            trained.set_requires_gradient_sync(True)
        return contextlib.nullcontext()
    if sharded:
        trained.set_requires_gradient_sync(False)
        return contextlib.nullcontext()
    return trained.no_sync()


def _full_state(model, trained, sharded: bool, world) -> dict | None:
    """The whole model's weights on rank 0 (gathered from every process when sharded)."""
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(trained, options=options)
        return state if world.is_main else None
    if not world.is_main:
        return None
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
