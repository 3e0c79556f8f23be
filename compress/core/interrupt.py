"""Ctrl-C and SIGTERM that always stop a run.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal arrives. If that
is a finalizer (an ONNX Runtime session or a temporary folder being garbage-collected), the interpreter
prints "Exception ignored in ..." and carries on: the run would finish as if never interrupted. So the
handlers also remember the signal, and `check()`, called at every progress step and stage boundary,
raises it again.
"""

from __future__ import annotations

import signal


class Terminated(KeyboardInterrupt):
    """SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so every half-written folder is removed."""


_received: list[int] = []  # the signals received, in order


def _handler(signum, frame) -> None:
    _received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> None:
    """Handle SIGINT and SIGTERM in this process (the main thread; SIGINT only where not ignored)."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def check() -> None:
    """Raise again a signal that was received but whose exception was swallowed."""
    if _received:
        raise Terminated() if _received[-1] == signal.SIGTERM else KeyboardInterrupt()
