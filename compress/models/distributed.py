"""Data-parallel training under `torchrun` or `accelerate launch`: rank 0 runs the pipeline, the
other ranks only lend their devices to training.

Why rank 0 drives: evaluation, export, quantization, gating and the bundle must happen once, and the
stage cache lives on rank 0's disk (several machines need not share a filesystem). So the other ranks
never run the pipeline. They wait for a training job (the model, the tokenized rows, the settings and
the loss, sent over the process group), train their share of every batch, and wait for the next job
until rank 0 says stop. This is the only module that talks to torch.distributed and accelerate.

Accelerate's `PartialState` reads the launch (torchrun's and `accelerate launch --multi_gpu`'s
RANK/WORLD_SIZE, mpirun's variables for `accelerate launch --cpu --mpirun_hostfile`) and picks the
backend: NCCL on CUDA, gloo on CPUs.
"""

from __future__ import annotations

import contextlib
import gc
import os
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from compress.core.environment import cpu_threads

# The other ranks wait inside one broadcast while rank 0 evaluates, exports and quantizes, which can
# take hours on a large model; a shorter timeout would kill a healthy run. A crashed rank still ends
# the job at once: torchrun and accelerate stop every process when one exits with an error.
WAIT_TIMEOUT = timedelta(days=2)

_LAUNCH_VARIABLES = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


@dataclass(frozen=True)
class World:
    """This process's place in the launch. A plain `compress run` is a world of one."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_world: World | None = None  # set by start(); a world of one until then
_training_threads = 0  # the launcher's share of the cores per process (torchrun sets OMP_NUM_THREADS)
_busy = False  # rank 0 is inside a training job: the others are in a collective, not waiting
_control = None  # the gloo group that carries jobs (NCCL cannot wait for hours without a GPU stream)


def current() -> World:
    return _world or World(device="cuda" if torch.cuda.is_available() else "cpu")


def launched() -> bool:
    """True when a launcher started several processes (torchrun, accelerate, mpirun)."""
    return any(int(os.environ.get(name, "1") or 1) > 1 for name in _LAUNCH_VARIABLES)


def single_process_warning() -> str | None:
    """`accelerate launch --cpu --num_processes N` without `--mpirun_hostfile` starts ONE process
    (accelerate starts several CPU processes only through mpirun) but still sets MASTER_ADDR; say so
    rather than let the user believe N processes trained."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("true", "1") and not launched():
        if "MASTER_ADDR" in os.environ:
            return (
                "accelerate launch --cpu started a single process (accelerate starts several CPU "
                "processes only through mpirun, --mpirun_hostfile); training runs on this one process. "
                "For N processes on this machine: torchrun --nproc_per_node N -m compress run ..."
            )
    return None


def start() -> World:
    """Join the process group when launched with several processes; a world of one otherwise."""
    global _world, _control, _training_threads
    cuda = torch.cuda.is_available()
    if not launched():
        _world = World(device="cuda" if cuda else "cpu")
        return _world
    from accelerate import PartialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = PartialState(cpu=not cuda, timeout=WAIT_TIMEOUT)
    device = f"cuda:{state.local_process_index}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(device)
    _world = World(state.process_index, state.num_processes, state.local_process_index, device, state.backend)
    _training_threads = torch.get_num_threads()
    if _world.is_main:  # the others only wait while rank 0 evaluates and exports: it may use every core
        torch.set_num_threads(cpu_threads())
    dist = torch.distributed
    _control = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT) if dist.get_backend() != "gloo" else None
    return _world


def send(job: Any) -> None:
    """Rank 0: hand a training job (any picklable object) to every other rank."""
    torch.distributed.broadcast_object_list([job], src=0, group=_control)


def receive() -> Any:
    """Other ranks: wait for the next job; None means the run is over."""
    box = [None]
    torch.distributed.broadcast_object_list(box, src=0, group=_control)
    return box[0]


@contextlib.contextmanager
def training():
    """Rank 0 inside a job: on its share of the cores, and marked busy (left marked if the job
    raised, see finish)."""
    global _busy
    _busy, threads = True, torch.get_num_threads()
    if _training_threads:
        torch.set_num_threads(_training_threads)  # every process trains: each on its share of the cores
    yield
    torch.set_num_threads(threads)
    _busy = False


def finish() -> None:
    """Rank 0: tell the other ranks to exit, then leave the process group. Safe to call twice.

    After a job that raised (Ctrl-C mid-training) the others sit in a gradient all-reduce, not in
    receive(): a stop message would not match it, so rank 0 just exits and the launcher ends them."""
    global _world
    world = current()
    if world.size > 1 and torch.distributed.is_initialized() and not _busy:
        if world.is_main:
            send(None)
        gc.collect()  # a DDP wrapper left for the collector must go before its process group
        torch.distributed.destroy_process_group()
    _world = None


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over all ranks (counts of correct predictions, rows seen)."""
    world = current()
    if world.size == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=world.device)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


def share(rows: list[int]) -> list[int]:
    """This rank's share of a batch: every size-th row from its rank on, so shares differ by at most
    one row and the union over ranks is the batch."""
    world = current()
    return rows[world.rank :: world.size]
