"""The progress display: silent off a terminal and for quick work, a line on a terminal."""

from __future__ import annotations

import io
import time

from pokewatch_core.progress import StageDisplay


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    with StageDisplay(stream, delay=0.0) as display:
        display("predicting")
        time.sleep(0.5)
    assert stream.getvalue() == ""


def test_silent_for_quick_work_on_a_terminal():
    stream = Terminal()
    with StageDisplay(stream, delay=5.0) as display:
        display("predicting")
        time.sleep(0.3)
    assert stream.getvalue() == ""


def test_shows_the_stage_after_the_delay_and_clears_the_line():
    stream = Terminal()
    with StageDisplay(stream, delay=0.1) as display:
        display("predicting with baseline_moving_average")
        time.sleep(0.7)
    text = stream.getvalue()
    assert "predicting with baseline_moving_average" in text
    assert text.endswith("\r\033[K")


def test_evaluate_reports_its_stages():
    from pokewatch_core import evaluate
    from tests.conftest import make_panel

    stages: list[str] = []
    evaluate("baseline_moving_average", make_panel(), metrics=["rmse"], progress=stages.append)
    assert stages == [
        "checking the data",
        "fitting baseline_moving_average",
        "predicting with baseline_moving_average",
        "computing rmse",
    ]
