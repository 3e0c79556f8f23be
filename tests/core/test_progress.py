"""Progress in a CI log (no terminal): few lines, each saying how far and how long."""

import pytest

from compress.core.progress import plain_lines


def lines_for(total: int, seconds_per_step: float, steps: int | None = None) -> list[str]:
    out: list[str] = []
    now = [0.0]
    advance = plain_lines(out.append, "task", total, clock=lambda: now[0])
    for _ in range(total if steps is None else steps):
        now[0] += seconds_per_step
        advance(loss="0.5")
    return out


@pytest.mark.parametrize(
    ("total", "seconds_per_step", "expected"),
    [
        (15, 0.1, 1),  # a 1.5 s evaluation: one line, at the end (was 15)
        (244, 0.06, 1),  # a 16 s pool pass: one line (was 11)
        (1000, 3.0, 10),  # a 50-minute training run: every 10%
        (1000, 0.5, 10),  # 500 s: 10% steps come every 50 s, each prints
        (60, 1.0, 2),  # 60 s: the 10% step after 30 s, then the end
        (100, 0.2, 1),  # 20 s: under 30 s, one line
        (1, 100.0, 1),
    ],
)
def test_lines_per_task(total, seconds_per_step, expected):
    lines = lines_for(total, seconds_per_step)
    assert len(lines) == expected
    assert lines[-1].startswith(f"  task {total}/{total} ")
    assert lines[-1].endswith("loss 0.5")


def test_never_two_lines_within_30_seconds_and_never_more_than_ten():
    out: list[str] = []
    now = [0.0]
    advance = plain_lines(out.append, "t", 40, clock=lambda: now[0])
    stamps = []
    for _ in range(40):
        now[0] += 5.0
        before = len(out)
        advance()
        if len(out) > before:
            stamps.append(now[0])
    assert len(out) <= 10
    assert all(b - a >= 30 for a, b in zip(stamps, stamps[1:], strict=False))
    assert stamps[-1] == 200.0, "the last step always prints"


def test_an_unfinished_task_says_how_far_it_got():
    lines = lines_for(100, 40.0, steps=25)
    assert lines and lines[-1].startswith("  task 20/100 ")
