"""A signal that Python drops (its handler raised inside a destructor or weakref callback, which
Python only reports as "Exception ignored") is recorded and raised again at the next
checkpoint, so it cannot let a run end FINISHED: Ctrl-C as much as SIGTERM."""

from __future__ import annotations

import signal

import pytest

from pokewatch_core.errors import Terminated
from pokewatch_core.interrupts import check_interrupted, terminating_signals_raise


class _SignalsInItsDestructor:
    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        signal.raise_signal(self.signum)
        for _ in range(1000):  # the handler runs here, inside the destructor: dropped
            pass


@pytest.mark.parametrize(
    ("signum", "raised"),
    [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)],
)
def test_a_signal_dropped_in_a_destructor_is_raised_at_the_next_checkpoint(signum, raised):
    with terminating_signals_raise():
        _SignalsInItsDestructor(signum)  # dropped at once: nothing raised here
        with pytest.raises(raised):
            check_interrupted()
    check_interrupted()  # outside the block nothing is recorded any more


def test_without_a_signal_the_checkpoint_passes():
    with terminating_signals_raise():
        check_interrupted()
