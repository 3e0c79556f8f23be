"""`compress cache ls / prune`: what to remove, as a table, and removing it safely."""

from dataclasses import dataclass

import pytest

from compress.core.cache import Cache
from compress.core.cache_admin import EntryInfo, choose, entries, parse_size, prune
from compress.core.errors import CompressError

NOW = 1_000_000.0
DAY = 86400.0


def entry(name: str, size: int, age_days: float, runs: set[str], pinned: bool = False) -> EntryInfo:
    return EntryInfo("s", name, size, NOW - age_days * DAY, {"r"}, runs, pinned)


FOUND = [
    entry("new", 10, 0.1, {"run3"}),
    entry("mid", 20, 2, {"run2"}),
    entry("old", 30, 10, {"run1"}),
    entry("pinned-old", 40, 20, {"run0"}, pinned=True),
]
RUNS = ["run3", "run2", "run1", "run0"]


@dataclass(frozen=True)
class Case:
    name: str
    keep_last: int | None
    max_size: int | None
    older_than: float | None
    removed: list[str]


CASES = [
    Case("nothing asked", None, None, None, []),
    Case("keep the last run", 1, None, None, ["mid", "old"]),
    Case("keep the last two runs", 2, None, None, ["old"]),
    Case("older than five days", None, None, 5, ["old"]),
    Case("older than a day", None, None, 1, ["mid", "old"]),
    Case("fit 70 bytes: least recently used first", None, 70, None, ["old"]),
    Case("fit 45 bytes: the pinned entry stays even so", None, 45, None, ["old", "mid", "new"]),
    Case("everything fits", None, 1000, None, []),
    Case("combined", 2, 40, 100, ["old", "mid", "new"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_choose(case):
    chosen = choose(
        FOUND,
        keep_last=case.keep_last,
        max_size=case.max_size,
        older_than_days=case.older_than,
        runs=RUNS,
        now=NOW,
    )
    assert sorted(e.key for e in chosen) == sorted(case.removed)
    assert "pinned-old" not in {e.key for e in chosen}


@pytest.mark.parametrize(
    "text,size",
    [
        ("123", 123),
        ("10k", 10240),
        ("500M", 500 * 1024**2),
        ("1.5GB", int(1.5 * 1024**3)),
        ("2 G", 2 * 1024**3),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_a_size_that_is_not_one_names_the_option():
    with pytest.raises(CompressError, match="--max-size 'lots'"):
        parse_size("lots")


def test_prune_keeps_what_a_live_run_pinned_and_reports_what_is_left(tmp_path):
    old = Cache(tmp_path, "run-1", "a")
    for key in ("k1", "k2"):
        old.get("s", key, lambda f: (f / "w").write_bytes(b"x" * 1000) and {})
    old.release()
    live = Cache(tmp_path, "run-2", "b")
    live.get("s", "k3", lambda f: (f / "w").write_bytes(b"y" * 1000) and {})
    removed, left = prune(tmp_path, max_size=1)
    assert sorted(e.key for e in removed) == ["k1", "k2"]
    assert [e.key for e in entries(tmp_path)] == ["k3"] and left == entries(tmp_path)[0].bytes
    assert live.lookup("s", "k3") is not None
    live.release()
    removed, left = prune(tmp_path, max_size=1)
    assert [e.key for e in removed] == ["k3"] and left == 0
    assert (tmp_path / ".usage.jsonl").read_text() == ""  # the log forgets removed entries


def test_ls_names_the_recipes_that_used_an_entry(tmp_path):
    Cache(tmp_path, "run-1", "a").get("s", "k", lambda f: {})
    Cache(tmp_path, "run-2", "b").lookup("s", "k")
    (found,) = entries(tmp_path)
    assert found.recipes == {"a", "b"} and found.runs == {"run-1", "run-2"} and found.pinned
