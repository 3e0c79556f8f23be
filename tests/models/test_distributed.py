"""Several processes under torchrun (gloo on this CPU machine): the same weights as one process, one
bundle, and no process left waiting when rank 0 stops early."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compress.models import distributed
from compress.models.training import micro_batches
from tests.conftest import REPO, link_data, load_manifest, smoke_text, stage_of

JOB = Path(__file__).with_name("train_tiny_job.py")


def torchrun(*args: str, processes: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N ARGS`, as a user launches it (a free port each time)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return subprocess.run(
        [*command, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "rows,steps,expected",
    [
        ([1, 2, 3, 4, 5], 1, [[1, 2, 3, 4, 5]]),
        ([1, 2, 3, 4, 5], 2, [[1, 2, 3], [4, 5]]),
        ([1, 2], 3, [[1], [2], []]),
        ([], 2, [[], []]),
    ],
)
def test_micro_batches_split_in_order(rows, steps, expected):
    assert micro_batches(rows, steps) == expected


def test_a_plain_run_is_a_world_of_one(monkeypatch):
    for name in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    world = distributed.current()
    assert (world.rank, world.size, world.is_main) == (0, 1, True)
    assert distributed.share([4, 5, 6]) == [4, 5, 6]
    assert distributed.all_sum([2.0, 3.0]) == [2.0, 3.0]


def test_accelerate_cpu_launch_of_one_process_is_named(monkeypatch):
    """`accelerate launch --cpu --num_processes 2` starts one process (several need mpirun)."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    assert "started a single process" in distributed.single_process_warning()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.single_process_warning() is None


@pytest.mark.parametrize(
    "parallel,accumulation",
    # DDP without accumulation is the simplest case of DDP with it: a slow check (make test-slow)
    [pytest.param("ddp", 1, marks=pytest.mark.slow), ("ddp", 3), ("fsdp", 2)],
)
def test_two_processes_train_the_same_weights_as_one(tmp_path, parallel, accumulation):
    """Without dropout and autocast, the batch's gradient is exact: two processes (DDP, or FSDP with
    sharded parameters), with or without accumulation, end on one process's weights to float error."""
    alone, together = tmp_path / "alone.pt", tmp_path / "together.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, str(JOB), str(alone), parallel, str(accumulation)], env=env, check=True, timeout=300
    )
    result = torchrun(str(JOB), str(together), parallel, str(accumulation), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = torch.load(alone), torch.load(together)
    assert b["metrics"]["processes"] == 2 and b["metrics"]["parallel"] == parallel
    assert a["metrics"]["processes"] == 1
    difference = max(float((a["state"][k] - b["state"][k]).abs().max()) for k in a["state"])
    assert difference < 1e-5, f"max |Δweight| {difference:.2e}"
    assert a["metrics"]["dev_history"] == b["metrics"]["dev_history"]


# `compress run` under torchrun end to end (about 30 s); the two-process training above stays fast
@pytest.mark.slow
def test_torchrun_smoke_recipe_matches_one_process_and_writes_one_bundle(first_run, out, tmp_path):
    """The issue's check: the smoke recipe on two processes exits 0, writes exactly one bundle, and
    every target's metric is within 1 point of the single-process run's."""
    recipe_path, single = first_run
    assert single.returncode == 0, single.stderr
    link_data(tmp_path)
    recipe = tmp_path / "smoke.toml"
    recipe.write_text(smoke_text())
    two = tmp_path / "artifacts"
    result = torchrun("-m", "compress", "run", str(recipe), "--out", str(two))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 processes (gloo)" in result.stderr
    bundles = [p for p in (two / "smoke").iterdir() if p.name != "latest"]
    assert len(bundles) == 1, bundles
    manifest, reference = load_manifest(two / "smoke" / "latest"), load_manifest(out / "smoke" / "latest")
    assert stage_of(manifest, "finetune")["metrics"]["processes"] == 2
    assert stage_of(manifest, "finetune")["metrics"]["threads_per_process"] == 1  # torchrun's share
    assert stage_of(manifest, "prune")["metrics"]["recovery"]["processes"] == 2
    assert stage_of(reference, "finetune")["metrics"]["processes"] == 1
    for mine, theirs in zip(manifest["targets"], reference["targets"], strict=True):
        assert mine["name"] == theirs["name"]
        gap = abs(mine["metric"] - theirs["metric"])
        assert gap <= 0.01, (mine["name"], mine["metric"], theirs["metric"])


def test_a_bad_recipe_under_torchrun_stops_every_process(tmp_path):
    """Rank 0 refuses the recipe; the other rank is told to stop rather than left waiting."""
    link_data(tmp_path)
    recipe = tmp_path / "bad.toml"
    recipe.write_text(smoke_text(**{"epochs = 3": "epochs = 0"}))
    result = torchrun("-m", "compress", "run", str(recipe), "--out", str(tmp_path / "a"), timeout=120)
    assert result.returncode != 0
    assert "finetune.epochs" in result.stderr
    assert not (tmp_path / "a" / "bad").exists()
