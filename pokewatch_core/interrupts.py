"""SIGTERM and SIGHUP handled like Ctrl-C: ``Terminated`` (a KeyboardInterrupt) is raised in
the main thread, so a run ends KILLED and temporary folders are removed on the way out.

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
_received: list[int] = []


def check_interrupted() -> None:
    """Raise ``Terminated`` if SIGTERM or SIGHUP arrived while handlers were installed."""
    if _received:
        raise Terminated(_received[0])


def _handler(signum: int, frame: Any) -> None:
    first = not _received
    _received.append(signum)
    if first:  # later signals must not break the cleanup the first one started
        raise Terminated(signum)


def _quiet_unraisable(hook: Any) -> Any:
    def unraisable(info: Any) -> None:
        if not isinstance(info.exc_value, Terminated):  # recorded; re-raised at a checkpoint
            hook(info)

    return unraisable


@contextlib.contextmanager
def terminating_signals_raise() -> Iterator[None]:
    """Install the handlers (main thread only) and restore the previous ones afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {s: signal.signal(s, _handler) for s in TERMINATING_SIGNALS}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable(previous_hook)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
        _received.clear()
