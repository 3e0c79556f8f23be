"""The cache: content checks, one build per key however many runs ask at once, pins, storage errors."""

import errno
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from compress.core import cache
from compress.core.cache import Cache, live_pins
from compress.core.errors import CompressError


def store(tmp_path, run="run-a") -> Cache:
    return Cache(tmp_path, run, "recipe")


def test_build_then_lookup(tmp_path):
    def work(folder):
        (folder / "out.txt").write_text("hello")
        return {"metrics": {"x": 1}}

    (folder, record), built = store(tmp_path).get("stage", "k1", work)
    assert built and (folder / "out.txt").read_text() == "hello"
    hit = store(tmp_path).lookup("stage", "k1")
    assert hit is not None and hit[1]["metrics"] == {"x": 1}
    assert store(tmp_path).lookup("stage", "other") is None
    (_, again), built = store(tmp_path).get("stage", "k1", lambda f: pytest.fail("rebuilt"))
    assert not built and again["metrics"] == {"x": 1}


def test_failed_work_publishes_nothing(tmp_path):
    def work(folder):
        (folder / "partial.bin").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store(tmp_path).get("stage", "k2", work)
    assert store(tmp_path).lookup("stage", "k2") is None
    assert list((tmp_path / "stage").iterdir()) == []


def test_tampered_entry_is_ignored(tmp_path):
    (folder, _), _ = store(tmp_path).get("stage", "k3", lambda f: (f / "w").write_text("a") and {})
    (folder / "w").write_text("b")
    assert store(tmp_path).lookup("stage", "k3") is None


def test_key_depends_on_every_field():
    base = {"stage": "export", "spec": {"opset": 18}}
    assert cache.json_key(base) == cache.json_key(dict(reversed(list(base.items()))))
    assert cache.json_key(base) != cache.json_key({**base, "spec": {"opset": 17}})


def test_an_edited_record_is_ignored(tmp_path):
    (folder, _), _ = store(tmp_path).get("stage", "k4", lambda f: {"metrics": {"accuracy": 0.8}})
    record = json.loads((folder / cache.RECORD).read_text())
    record["metrics"]["accuracy"] = 0.99  # files untouched, the record's own figure changed
    (folder / cache.RECORD).write_text(json.dumps(record))
    assert store(tmp_path).lookup("stage", "k4") is None


def test_two_runs_asking_at_once_build_once(tmp_path):
    """The second waits on the entry's lock and then gets the first's build."""
    calls = []

    def work(folder):
        calls.append(threading.get_ident())
        time.sleep(0.5)
        (folder / "w").write_text("made once")
        return {}

    results = []
    threads = [
        threading.Thread(target=lambda r=run: results.append(Cache(tmp_path, r, "x").get("s", "k", work)))
        for run in ("run-a", "run-b", "run-c")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(built for _, built in results) == [False, False, True]


def test_a_forced_rebuild_replaces_files_in_place(tmp_path):
    """`--no-cache` while another run reads the entry: the folder stays where it is."""
    (folder, _), _ = store(tmp_path).get("s", "k", lambda f: (f / "w").write_text("old") and {"v": 1})
    with open(folder / "w") as reader:  # another run has the file open
        (again, record), built = store(tmp_path, "run-b").get(
            "s", "k", lambda f: (f / "w").write_text("new") and {"v": 2}, force=True
        )
        assert built and again == folder and record["v"] == 2
        assert reader.read() == "old"  # what it opened stays readable
    assert (folder / "w").read_text() == "new" and store(tmp_path).lookup("s", "k")[1]["v"] == 2


def test_runs_pin_what_they_use_until_they_release(tmp_path):
    a, b = store(tmp_path, "run-a"), store(tmp_path, "run-b")
    a.get("s", "k1", lambda f: {})
    b.get("s", "k2", lambda f: {})
    b.lookup("s", "k1")
    assert live_pins(tmp_path) == {"s/k1", "s/k2"}
    b.release()
    assert live_pins(tmp_path) == {"s/k1"}
    usage = [json.loads(line) for line in (tmp_path / ".usage.jsonl").read_text().splitlines()]
    assert [(u["run"], u["entry"]) for u in usage] == [
        ("run-a", "s/k1"),
        ("run-b", "s/k2"),
        ("run-b", "s/k1"),
    ]


def test_the_pins_of_a_dead_run_do_not_count(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pins = tmp_path / ".pins"
    pins.mkdir()
    (pins / "gone.json").write_text(
        json.dumps({"pid": dead.pid, "host": os.uname().nodename, "entries": ["s/k"]})
    )
    assert live_pins(tmp_path) == set() and not (pins / "gone.json").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_storage_failure_is_one_message_and_keeps_the_entry(tmp_path, code):
    (folder, _), _ = store(tmp_path).get("s", "k", lambda f: (f / "w").write_text("good") and {})

    def full(folder):
        raise OSError(code, os.strerror(code), str(folder / "model.safetensors"))

    with pytest.raises(CompressError, match=f"could not write the cache entry s/k in .*{os.strerror(code)}"):
        store(tmp_path, "run-b").get("s", "k", full, force=True)
    assert (folder / "w").read_text() == "good" and store(tmp_path).lookup("s", "k") is not None
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["k"]


def test_a_bug_in_a_step_is_not_reported_as_storage(tmp_path):
    def broken(folder):
        raise FileNotFoundError(errno.ENOENT, "No such file", "missing.json")

    with pytest.raises(FileNotFoundError):
        store(tmp_path).get("s", "k", broken)


def test_only_temporary_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    kind = tmp_path / "stage"
    for name in (f".tmp-abc-{dead.pid}-1234", f".tmp-abc-{os.getppid()}-5678", ".tmp-unparsable", "realkey"):
        (kind / name).mkdir(parents=True)
    removed = cache.remove_stale_entries(tmp_path)
    assert [p.name for p in removed] == [f".tmp-abc-{dead.pid}-1234"]
    assert sorted(p.name for p in kind.iterdir()) == sorted(
        [f".tmp-abc-{os.getppid()}-5678", ".tmp-unparsable", "realkey"]
    )


def test_code_hashes_skip_the_recipe_package_and_the_progress_display_but_nothing_else(tmp_path, monkeypatch):
    """A stage's key holds its resolved table, so the schema's source need not rebuild a fine-tuned
    model; the training loop's source must."""
    from compress.core import code

    stage = "compress.stages.finetune"
    assert {"compress.recipe.schema", "compress.models.training"} <= set(code.closure(stage))
    before = code.code_hash.__wrapped__(stage)
    known = dict(code.modules())
    for module in ("compress.recipe.stage_tables", "compress.core.progress", "compress.models.training"):
        edited = tmp_path / f"{module}.py"
        edited.write_text(known[module].read_text() + "\n# edited\n")
        monkeypatch.setattr(code, "modules", lambda m=module, e=edited: {**known, m: e})
        changed = code.code_hash.__wrapped__(stage) != before
        assert changed is (module == "compress.models.training"), module
