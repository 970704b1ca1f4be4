"""SIGTERM and SIGHUP handled like Ctrl-C: ``Terminated`` (a KeyboardInterrupt) is raised in
the main thread, so a run ends KILLED and temporary folders are removed on the way out; Ctrl-C
(SIGINT) raises KeyboardInterrupt as usual, and is recorded like them.

Python drops an exception raised by a signal handler while a weakref callback or ``__del__``
runs (it only reports it as "Exception ignored"); the signal is therefore also recorded, and
``check_interrupted`` - called before every tracking store write and before a run is ended
FINISHED - raises it again, so a dropped signal can delay the end by one step but never lets
the run finish.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from pokewatch_core.errors import Terminated

TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
HANDLED_SIGNALS = (signal.SIGINT, *TERMINATING_SIGNALS)
_received: list[int] = []


def _interruption(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def check_interrupted() -> None:
    """Raise again the interruption (KeyboardInterrupt for SIGINT, ``Terminated`` for SIGTERM
    or SIGHUP) that arrived while the handlers were installed, if one did."""
    if _received:
        raise _interruption(_received[0])


def _handler(signum: int, frame: Any) -> None:
    first = not _received
    _received.append(signum)
    if first:  # later signals must not break the cleanup the first one started
        raise _interruption(signum)


def _quiet_unraisable(hook: Any) -> Any:
    def unraisable(info: Any) -> None:
        # recorded, and raised again at the next checkpoint
        if not (isinstance(info.exc_value, KeyboardInterrupt) and _received):
            hook(info)

    return unraisable


@contextlib.contextmanager
def terminating_signals_raise() -> Iterator[None]:
    """Install the handlers (main thread only) and restore the previous ones afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {s: signal.signal(s, _handler) for s in HANDLED_SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(previous_hook)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
        _received.clear()
