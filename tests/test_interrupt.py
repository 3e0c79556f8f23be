"""Killed runs lose nothing: SIGKILL at every stage boundary, mid-stage and mid-bundle, then a re-run
that must finish with the same results as an uninterrupted run; SIGTERM stops cleanly; a pickled
checkpoint never gets to run its payload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compress.output.verify import verify_bundle
from tests.conftest import load_manifest, run_cli


def _start(recipe: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "compress", "run", str(recipe), "--out", str(out), "-q", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        # as from a terminal: a shell that starts jobs in the background (a CI script, `cmd &`) has them
        # ignore SIGINT, and compress respects an ignored SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _stop_when(proc: subprocess.Popen, started, sig=signal.SIGKILL, delay: float = 0.0) -> bool:
    """Send `sig` as soon as `started()` is true (after `delay`); False if the run ended first."""
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if started():
            time.sleep(delay)
            proc.send_signal(sig)
            proc.wait(timeout=120)
            return True
        time.sleep(0.005)
    proc.wait(timeout=120)
    return False


def _tmp_in(folder: Path):
    return lambda: folder.is_dir() and any(p.name.startswith(".tmp-") for p in folder.iterdir())


def _results(bundle: Path) -> dict:
    return {t["name"]: (t["metric"], t["artifact_sha256"]) for t in load_manifest(bundle)["targets"]}


def _only_complete_bundles(parent: Path) -> None:
    """Whatever a reader can see is a whole bundle: every visible folder verifies."""
    if not parent.exists():
        return
    for p in parent.iterdir():
        if not p.name.startswith("."):
            verify_bundle(p)  # raises, naming the file, on anything partial


@pytest.fixture(scope="module")
def clean(first_run, out):
    recipe, result = first_run
    assert result.returncode == 0, result.stderr
    return recipe, _results(out / "smoke" / "latest")


KILL_POINTS = {
    "mid-stage (finetune, 1 s in)": ("finetune", 1.0),
    "boundary finetune | prune": ("prune", 0.0),
    "boundary prune | export": ("export", 0.0),
    "boundary export | quantize": ("quantize", 0.0),
    "after the last stage, mid-bundle": (None, 0.0),
}


# `make test` kills mid-stage and mid-bundle; `make test-slow` at every stage boundary too
QUICK = ("mid-stage (finetune, 1 s in)", "after the last stage, mid-bundle")


@pytest.mark.parametrize(
    "points",
    [
        pytest.param(QUICK, id="quick"),
        pytest.param(tuple(KILL_POINTS), id="every-point", marks=pytest.mark.slow),
    ],
)
def test_sigkill_anywhere_then_rerun_gives_the_clean_results(clean, tmp_path, points):
    recipe, expected = clean
    out = tmp_path / "out"
    bundles = out / recipe.stem
    for point in points:
        stage, delay = KILL_POINTS[point]
        watched = out / ".cache" / stage if stage else bundles
        killed = _stop_when(_start(recipe, out, "--no-cache"), _tmp_in(watched), delay=delay)
        assert killed, f"the run finished before {point}"
        _only_complete_bundles(bundles)
        again = run_cli("run", str(recipe), "--out", str(out), "-q")
        assert again.returncode == 0, (point, again.stderr)
        assert _results(bundles / "latest") == expected, point
        _only_complete_bundles(bundles)
        leftovers = [p for p in out.rglob(".tmp-*")]
        assert leftovers == [], (point, leftovers)


def test_sigint_stops_with_130_and_discards_the_unfinished_stage(clean, tmp_path):
    recipe, _ = clean
    out = tmp_path / "out"
    proc = _start(recipe, out)
    assert _stop_when(proc, _tmp_in(out / ".cache" / "finetune"), sig=signal.SIGINT, delay=1.0)
    assert proc.returncode == 130
    stderr = proc.stderr.read()
    assert "error: interrupted; the unfinished stage was discarded" in stderr and "Traceback" not in stderr
    assert list(out.rglob(".tmp-*")) == [] and not (out / recipe.stem).exists()


def test_sigterm_stops_cleanly_and_says_how_to_resume(clean, tmp_path):
    recipe, expected = clean
    out = tmp_path / "out"
    proc = _start(recipe, out)
    assert _stop_when(proc, _tmp_in(out / ".cache" / "finetune"), sig=signal.SIGTERM, delay=1.0)
    assert proc.returncode == 143
    stderr = proc.stderr.read()
    assert "error: terminated (SIGTERM)" in stderr and "re-run the same command to resume" in stderr
    assert "Traceback" not in stderr
    assert list(out.rglob(".tmp-*")) == []  # the unfinished stage was discarded on the way out
    assert not (out / recipe.stem).exists()
    again = run_cli("run", str(recipe), "--out", str(out), "-q")
    assert again.returncode == 0 and _results(out / recipe.stem / "latest") == expected


class Payload:
    """Unpickling this runs `touch <marker>`: what a poisoned checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _poisoned_checkpoint(folder: Path, marker: Path, with_safetensors: bool) -> None:
    import pickle

    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=30522
    )
    model = BertForSequenceClassification(config)
    if with_safetensors:
        model.save_pretrained(folder, safe_serialization=True)
    else:
        folder.mkdir(parents=True)
        config.save_pretrained(folder)
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"weights": Payload(marker)}, f)


def test_a_pickle_checkpoint_is_refused_without_running_it(write_recipe, tmp_path):
    from tests.conftest import smoke_text

    marker = tmp_path / "payload-ran"
    _poisoned_checkpoint(tmp_path / "ckpt", marker, with_safetensors=False)
    tiny = next(line for line in smoke_text().splitlines() if line.startswith("tiny = "))
    recipe = write_recipe(smoke_text(**{tiny: 'path = "ckpt"'}))
    result = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "model.path" in result.stderr and "pickled .bin checkpoints are not loaded" in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_beside_safetensors_the_pickle_is_never_opened(tmp_path):
    from compress.models.loading import load_classifier

    marker = tmp_path / "payload-ran"
    _poisoned_checkpoint(tmp_path / "ckpt", marker, with_safetensors=True)
    model = load_classifier(tmp_path / "ckpt")
    assert model.config.hidden_size == 32 and not marker.exists()
