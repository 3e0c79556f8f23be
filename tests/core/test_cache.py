import pytest

from compress.core import cache


def test_build_then_lookup(tmp_path):
    def work(folder):
        (folder / "out.txt").write_text("hello")
        return {"metrics": {"x": 1}}

    folder, record = cache.build(tmp_path, "stage", "k1", work)
    assert (folder / "out.txt").read_text() == "hello"
    hit = cache.lookup(tmp_path, "stage", "k1")
    assert hit is not None and hit[1]["metrics"] == {"x": 1}
    assert cache.lookup(tmp_path, "stage", "other") is None


def test_failed_work_publishes_nothing(tmp_path):
    def work(folder):
        (folder / "partial.bin").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.build(tmp_path, "stage", "k2", work)
    assert cache.lookup(tmp_path, "stage", "k2") is None
    assert list((tmp_path / "stage").iterdir()) == []


def test_tampered_entry_is_ignored(tmp_path):
    folder, _ = cache.build(tmp_path, "stage", "k3", lambda f: (f / "w").write_text("a") and {})
    (folder / "w").write_text("b")
    assert cache.lookup(tmp_path, "stage", "k3") is None


def test_key_depends_on_every_field():
    base = {"stage": "export", "spec": {"opset": 18}}
    assert cache.json_key(base) == cache.json_key(dict(reversed(list(base.items()))))
    assert cache.json_key(base) != cache.json_key({**base, "spec": {"opset": 17}})


def test_an_edited_record_is_ignored(tmp_path):
    import json

    folder, _ = cache.build(tmp_path, "stage", "k4", lambda f: {"metrics": {"accuracy": 0.8}})
    record = json.loads((folder / cache.RECORD).read_text())
    record["metrics"]["accuracy"] = 0.99  # files untouched, the record's own figure changed
    (folder / cache.RECORD).write_text(json.dumps(record))
    assert cache.lookup(tmp_path, "stage", "k4") is None


def test_only_temporary_folders_of_dead_processes_are_removed(tmp_path):
    import os
    import subprocess

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
