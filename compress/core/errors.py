"""Named exceptions. Each maps to one exit code in the CLI, so callers never parse messages."""

from __future__ import annotations


class CompressError(Exception):
    """Bad input or configuration: a recipe, data file or checkpoint the user must fix (exit 2)."""


class StageFailed(Exception):
    """A stage ran but its own check failed (e.g. export parity); the run is red (exit 1).

    `metrics` keeps what the stage measured before failing, so the report can show it.
    """

    def __init__(self, message: str, metrics: dict | None = None):
        super().__init__(message)
        self.metrics = metrics or {}
