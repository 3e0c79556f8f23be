"""compress as a CI job uses it: runs at once into one folder, a cache keyed on the code, bundles
that share nothing, a cache pruned while a run reads it, and storage failures that lose nothing."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from compress.core.cache_admin import entries
from compress.output.verify import BundleInvalid, verify_bundle
from tests.conftest import REPO, fast_recipe, link_data, load_manifest, run_cli
from tests.test_cli_promises import SMOKE_STAGES, rebuilt, reused


def start(recipe: Path, out: Path, env: dict | None = None, cwd: Path = REPO) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "compress", "run", str(recipe), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
        cwd=cwd,
    )


def four_at_once(recipe: Path, out: Path) -> list[Path]:
    """Four `compress run` processes started together into `out`: their bundles, checked."""
    procs = [start(recipe, out) for _ in range(4)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 4, [err[-2000:] for _, _, err in results]
    bundles = [Path(stdout.splitlines()[-1].removeprefix("PASS: ")).parent for _, stdout, _ in results]
    assert len(set(bundles)) == 4
    for bundle in bundles:
        verify_bundle(bundle)
    # each stage was built by exactly one of the four; the others waited and reused its entry
    built = {name: 0 for name in SMOKE_STAGES}
    for bundle in bundles:
        for stage in load_manifest(bundle)["stages"]:
            built[stage["name"]] += not stage["cached"]
    assert built == {name: 1 for name in SMOKE_STAGES}
    assert (out / recipe.stem / "latest").resolve() in {b.resolve() for b in bundles}
    return bundles


def test_four_runs_at_once_into_one_fresh_folder(tmp_path):
    link_data(tmp_path)
    four_at_once(fast_recipe(tmp_path), tmp_path / "out")
    assert list((tmp_path / "out").rglob(".tmp-*")) == []


@pytest.mark.slow
def test_four_runs_at_once_ten_times_in_a_row(tmp_path):
    """The smoke recipe, 4 processes into a fresh folder, 10 times: 40 of 40 pass and verify."""
    link_data(tmp_path)
    recipe = tmp_path / "smoke.toml"
    shutil.copy(REPO / "recipes" / "smoke.toml", recipe)
    bundles = []
    for round_ in range(10):
        bundles += four_at_once(recipe, tmp_path / f"out-{round_}")
    assert len(bundles) == 40


def test_a_flipped_byte_in_one_bundle_harms_no_other(tmp_path):
    link_data(tmp_path)
    recipe = fast_recipe(tmp_path)
    for _ in range(2):
        assert run_cli("run", str(recipe), "--out", str(tmp_path / "out")).returncode == 0
    first, second = sorted(p for p in (tmp_path / "out" / "fast").iterdir() if not p.is_symlink())
    model = first / "targets" / "x86-onnxruntime-int8" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleInvalid, match="model.onnx"):
        verify_bundle(first)
    verify_bundle(second)  # shares no inode with the first
    again = run_cli("run", str(recipe), "--out", str(tmp_path / "out"))
    assert again.returncode == 0 and reused(again.stderr) == SMOKE_STAGES  # the cache was not touched
    verify_bundle(Path(again.stdout.splitlines()[-1].removeprefix("PASS: ")).parent)
    assert (first / "targets").stat().st_ino != (second / "targets").stat().st_ino
    for name in ("model.onnx",):
        a = first / "targets" / "x86-onnxruntime-fp32" / name
        b = second / "targets" / "x86-onnxruntime-fp32" / name
        assert a.stat().st_ino != b.stat().st_ino and a.stat().st_nlink == 1


def test_a_one_line_change_to_a_stage_module_rebuilds_it_and_every_later_stage(tmp_path):
    """Same version number, one comment added to export.py: finetune and prune are reused,
    export and quantize rebuilt."""
    package = tmp_path / "pkg"
    shutil.copytree(REPO / "compress", package / "compress", ignore=shutil.ignore_patterns("__pycache__"))
    link_data(tmp_path)
    recipe = fast_recipe(tmp_path)
    env = {"PYTHONPATH": str(package)}

    def run() -> subprocess.CompletedProcess:
        proc = start(recipe, tmp_path / "out", env, cwd=tmp_path)  # not the checkout: its compress/ wins
        stdout, stderr = proc.communicate(timeout=600)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    first = run()
    assert first.returncode == 0 and rebuilt(first.stderr) == SMOKE_STAGES
    stage = package / "compress" / "stages" / "export.py"
    stage.write_text(stage.read_text() + "# a one-line change\n")
    again = run()
    assert again.returncode == 0, again.stderr
    assert reused(again.stderr) == ["finetune", "prune"] and rebuilt(again.stderr) == ["export", "quantize"]


def test_prune_while_a_run_reads_the_cache(tmp_path):
    """Another recipe's entries fill the cache; a run is frozen mid-way (SIGSTOP) with entries
    pinned; `prune --max-size` takes the cache down to those pinned entries; the run resumes and
    passes."""
    link_data(tmp_path)
    out = tmp_path / "out"
    other = fast_recipe(tmp_path, "other", {"learning_rate = 2e-3": "learning_rate = 1e-3"})
    assert run_cli("run", str(other), "--out", str(out)).returncode == 0
    before = {e.name for e in entries(out / ".cache")}
    proc = start(fast_recipe(tmp_path), out)
    pins = out / ".cache" / ".pins"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        pinned = [json.loads(p.read_text())["entries"] for p in pins.glob("*.json")] if pins.is_dir() else []
        if any(len(e) >= 3 for e in pinned):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)
    try:
        held = {e.name: e.bytes for e in entries(out / ".cache") if e.pinned}
        limit = sum(held.values()) + 1024
        result = run_cli("cache", "prune", "--out", str(out), "--max-size", str(limit))
        assert result.returncode == 0, result.stderr
        after = entries(out / ".cache")
        assert sum(e.bytes for e in after) <= limit and {e.name for e in after} >= set(held)
        assert not ({e.name for e in after} & (before - set(held)))  # the other recipe's went
    finally:
        proc.send_signal(signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    verify_bundle(Path(stdout.splitlines()[-1].removeprefix("PASS: ")).parent)


# --- storage failures: one line, exit 2, nothing lost ------------------------------------------


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A fast recipe run once: its bundle and cache are what each failure below must not harm
    (each test checks that they are intact afterwards, so they can share them)."""
    folder = tmp_path_factory.mktemp("warm")
    link_data(folder)
    recipe = fast_recipe(folder)
    assert run_cli("run", str(recipe), "--out", str(folder / "out")).returncode == 0
    bundle = (folder / "out" / "fast" / "latest").resolve()
    return recipe, folder / "out", bundle


def run_in_process(*args: str):
    from compress.cli import main

    return CliRunner().invoke(main, list(args))


def assert_nothing_lost(out: Path, bundle: Path, cache_before: set[str]) -> None:
    assert (out / "fast" / "latest").resolve() == bundle
    verify_bundle(bundle)
    assert {e.name for e in entries(out / ".cache")} >= cache_before
    assert list(out.rglob(".tmp-*")) == []


def one_error_line(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_storage_failure_during_a_stage(warm, monkeypatch, code):
    recipe, out, bundle = warm
    before = {e.name for e in entries(out / ".cache")}
    from compress.stages import export

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(out / ".cache" / "export" / "model.onnx"))

    monkeypatch.setattr(export, "export_onnx", fail)
    result = run_in_process("run", str(recipe), "--out", str(out), "--from", "export", "-q")
    one_error_line(
        result, "could not write the cache entry export/", os.strerror(code), "nothing was replaced"
    )
    assert_nothing_lost(out, bundle, before)


def test_a_storage_failure_while_writing_the_bundle(warm, monkeypatch):
    recipe, out, bundle = warm
    before = {e.name for e in entries(out / ".cache")}
    from compress.output import bundle as bundle_module

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", dst)

    monkeypatch.setattr(bundle_module, "_copy_file", full)
    result = run_in_process("run", str(recipe), "--out", str(out), "-q")
    one_error_line(
        result,
        "could not write the bundle",
        "No space left on device",
        f"the previous bundle {bundle} is intact",
    )
    assert_nothing_lost(out, bundle, before)


def test_a_storage_failure_while_writing_a_cache_record(warm, monkeypatch):
    recipe, out, bundle = warm
    before = {e.name for e in entries(out / ".cache")}
    from compress.core import cache

    real = cache._files

    def read_only(folder):
        if ".tmp-" in folder.name:
            raise OSError(errno.EROFS, "Read-only file system", str(folder / cache.RECORD))
        return real(folder)

    monkeypatch.setattr(cache, "_files", read_only)
    result = run_in_process("run", str(recipe), "--out", str(out), "--no-cache", "-q")
    one_error_line(result, "could not write the cache entry", "Read-only file system")
    assert_nothing_lost(out, bundle, before)


def test_a_read_only_output_folder(warm, monkeypatch):
    recipe, out, bundle = warm
    before = {e.name for e in entries(out / ".cache")}
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(out)):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    result = run_in_process("run", str(recipe), "--out", str(out), "-q")
    one_error_line(result, "Read-only file system")
    monkeypatch.undo()
    assert_nothing_lost(out, bundle, before)


def test_cache_ls_and_explain_show_what_keys_are_made_of(warm, tmp_path):
    recipe, out, bundle = warm
    listed = run_cli("cache", "ls", "--out", str(out))
    assert listed.returncode == 0 and "finetune" in listed.stdout and " fast" in listed.stdout
    stages = {s["name"]: s for s in load_manifest(bundle)["stages"]}
    for name in SMOKE_STAGES:
        shown = run_cli("cache", "explain", str(recipe), name, "--out", str(out))
        assert shown.returncode == 0, shown.stderr
        explained = json.loads(shown.stdout)
        assert explained["key"] == stages[name]["cache_key"] and explained["cached"]
        assert set(explained["parts"]) == {"stage", "spec", "reads", "data", "inputs", "versions", "code"}
        assert f"compress.stages.{name}" in explained["code_modules"]
    unknown = run_cli("cache", "explain", str(recipe), "engine", "--out", str(out))
    assert unknown.returncode == 2 and "not a stage of this recipe" in unknown.stderr
    empty = run_cli("cache", "explain", str(recipe), "export", "--out", str(tmp_path / "nothing"))
    assert empty.returncode == 2 and "run it first" in empty.stderr
    bad = run_cli("cache", "prune", "--out", str(out), "--max-size", "lots")
    assert bad.returncode == 2 and "--max-size 'lots'" in bad.stderr
