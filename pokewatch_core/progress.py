"""A one-line progress display on stderr for long evaluations.

Silent unless stderr is a terminal, and silent for the first two seconds, so quick runs and
pipelines never see it.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

DELAY = 2.0
FRAMES = "|/-\\"


class StageDisplay:
    """Context manager; call it with a stage name (``display("predicting")``) as work moves."""

    def __init__(self, stream: TextIO | None = None, delay: float = DELAY) -> None:
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.delay = delay
        self.stage = "starting"
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False

    def __call__(self, stage: str) -> None:
        from pokewatch_core.terminal import printable

        self.stage = printable(stage)  # stages name files

    def __enter__(self) -> StageDisplay:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self.stream.write("\r\033[K")  # clear the line
            self.stream.flush()

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(0.2):
            elapsed = time.monotonic() - self._start
            if elapsed < self.delay:
                continue
            self._shown = True
            frame = FRAMES[tick % len(FRAMES)]
            self.stream.write(f"\r\033[K{frame} {self.stage} ({elapsed:.0f} s)")
            self.stream.flush()
            tick += 1
