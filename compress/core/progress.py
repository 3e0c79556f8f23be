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


class Reporter:
    """One console for the whole run; stages ask it for bars instead of printing themselves."""

    def __init__(self, quiet: bool = False):
        self.console = Console(stderr=True, quiet=quiet, highlight=False)

    def info(self, message: str) -> None:
        """One status line (rich markup allowed)."""
        self.console.print(message)

    @contextlib.contextmanager
    def bar(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Yield `advance(n=1, **fields)`; `fields` (e.g. loss) are shown beside the bar.

        Without a terminal (CI logs) a bar cannot redraw, so a plain line is printed every 10%.
        """
        if not self.console.is_terminal:
            yield self._plain_lines(description, total)
            return
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
                if fields:
                    progress.update(task, advance=n, status="  ".join(f"{k} {v}" for k, v in fields.items()))
                else:
                    progress.update(task, advance=n)

            yield advance

    def _plain_lines(self, description: str, total: int) -> Callable[..., None]:
        done, step, started = 0, max(1, total // 10), time.perf_counter()

        def advance(n: int = 1, **fields: object) -> None:
            nonlocal done
            before, done = done, done + n
            if done // step > before // step or done == total:
                status = "  ".join(f"{k} {v}" for k, v in fields.items())
                elapsed = time.perf_counter() - started
                self.console.print(f"  {description} {done}/{total} {elapsed:.0f}s {status}".rstrip())

        return advance
