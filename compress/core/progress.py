"""Progress bars and status lines on stderr (stdout stays free for machine-readable output)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from compress.core import interrupt


class Reporter:
    """One console for the whole run; stages ask it for bars instead of printing themselves."""

    def __init__(self, quiet: bool = False):
        self.console = Console(stderr=True, quiet=quiet, highlight=False)
        self.timings: list[tuple[str, float]] = []  # (bar or step, seconds): the manifest's `steps`

    def info(self, message: str) -> None:
        """One status line (rich markup allowed)."""
        interrupt.check()
        self.console.print(message)

    @contextlib.contextmanager
    def bar(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Yield `advance(n=1, **fields)`; `fields` (e.g. loss) are shown beside the bar.

        Without a terminal (CI logs) a bar cannot redraw: plain lines instead (`plain_lines`).
        Each bar's wall time is kept in `timings`, so a run says where its time went.
        """
        with self.timed(description):
            if not self.console.is_terminal:
                yield self._plain_lines(description, total)
                return
            yield from self._rich_bar(description, total)

    @contextlib.contextmanager
    def timed(self, description: str) -> Iterator[None]:
        """Time a step that has no bar (an export, one quantize call) into `timings`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings.append((description, round(time.perf_counter() - started, 2)))

    def _rich_bar(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        columns = [
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        ]
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(description, total=total, status="")

            def advance(n: int = 1, **fields: object) -> None:
                interrupt.check()
                if fields:
                    progress.update(task, advance=n, status="  ".join(f"{k} {v}" for k, v in fields.items()))
                else:
                    progress.update(task, advance=n)

            yield advance

    def _plain_lines(self, description: str, total: int) -> Callable[..., None]:
        return plain_lines(lambda line: self.console.print(line), description, total)


MIN_SECONDS_BETWEEN_LINES = 30.0


def plain_lines(
    emit: Callable[[str], None],
    description: str,
    total: int,
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[..., None]:
    """`advance` for a log without a terminal: a line when another 10% is done and at least 30 s
    have passed since the last line, and always at the end. A task under 30 s is one line; a long
    one at most ten, so a CI log reads as a list of what ran and how long it took."""
    done, step = 0, max(1, total // 10)
    started = last = clock()

    def advance(n: int = 1, **fields: object) -> None:
        nonlocal done, last
        interrupt.check()
        before, done = done, done + n
        now = clock()
        crossed = done // step > before // step
        if done >= total or (crossed and now - last >= MIN_SECONDS_BETWEEN_LINES):
            last = now
            status = "  ".join(f"{k} {v}" for k, v in fields.items())
            emit(f"  {description} {done}/{total} {now - started:.0f}s {status}".rstrip())

    return advance
