"""Progress bars and status lines on stderr (stdout stays free for machine-readable output)."""

from __future__ import annotations

import contextlib
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
        self.console.print(message)

    @contextlib.contextmanager
    def bar(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """Yield `advance(n=1, **fields)`; `fields` (e.g. loss) are shown beside the bar."""
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
                status = "  ".join(f"{k} {v}" for k, v in fields.items())
                progress.update(task, advance=n, **({"status": status} if fields else {}))

            yield advance
