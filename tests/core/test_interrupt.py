"""A signal whose KeyboardInterrupt a finalizer swallowed still stops the run at the next progress step."""

import signal

import pytest

from compress.core import interrupt
from compress.core.progress import Reporter, plain_lines


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(interrupt, "_received", [])


def swallowed(signum: int) -> None:
    """What the interpreter does when the signal lands in a __del__: the exception goes nowhere."""
    try:
        interrupt._handler(signum, None)
    except KeyboardInterrupt:
        pass


def test_nothing_received_nothing_raised(fresh):
    interrupt.check()
    Reporter(quiet=True).info("a line")


@pytest.mark.parametrize(
    "signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, interrupt.Terminated)]
)
def test_a_swallowed_signal_is_raised_again_at_the_next_step(fresh, signum, raised):
    swallowed(signum)
    with pytest.raises(raised) as caught:
        Reporter(quiet=True).info("the next stage")
    assert (type(caught.value) is interrupt.Terminated) is (signum == signal.SIGTERM)
    advance = plain_lines(lambda line: None, "evaluate", 10)
    with pytest.raises(raised):
        advance()
    with pytest.raises(raised), Reporter(quiet=True).bar("train", 3) as step:
        step()
