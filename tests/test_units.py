"""Units: every metric states one, and the terminal shows each value in it (a percent with
``%``, a fraction or ratio never multiplied by 100 or marked ``%``)."""

from __future__ import annotations

import re

import pytest

from pokewatch_core import UNITS, get_plugins
from pokewatch_core.evaluation.summary import format_metric, metrics_table
from pokewatch_core.testing import check_metric


def test_every_default_metric_declares_a_unit_and_says_it_in_its_description():
    metrics = get_plugins().metrics
    for name in metrics.names():
        cls = metrics.get(name)
        assert cls.unit in UNITS, name
        assert f"({cls.unit})" in cls.description, name


def test_formatting_by_unit():
    assert format_metric(12.5, "percent") == "12.5 %"
    assert format_metric(0.125, "fraction") == "0.125"
    assert format_metric(1.5, "ratio") == "1.5"
    assert format_metric(7026177.0, "count") == "7026177"
    assert format_metric(float("nan"), "percent") == "nan"
    table = metrics_table(
        {"mape": 3.5, "buy_precision": 0.25}, {"mape": "percent"} | {"buy_precision": "fraction"}
    )
    assert table.splitlines() == [
        "  mape           3.5 %  percent",
        "  buy_precision   0.25  fraction",
    ]


def test_the_kit_rejects_a_metric_without_a_known_unit():
    from dataclasses import dataclass
    from typing import ClassVar

    from pokewatch_core import Metric

    @dataclass
    class Dollars(Metric):
        name: ClassVar[str] = "dollars"
        description: ClassVar[str] = "A figure in dollars (usd)."
        unit: ClassVar[str] = "usd"

        def compute(self, frame):
            return 1.0

    with pytest.raises(AssertionError, match="unit 'usd'"):
        check_metric(Dollars)


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_train_prints_each_metric_in_its_unit(run_cli, store):
    out = run_cli("train", "--tracking-uri", store)
    assert out.exit_code == 0, out.stderr
    lines = out.stdout.splitlines()
    metrics = get_plugins().metrics
    shown = {}
    for line in lines[lines.index("Metrics:") + 1 :]:
        match = re.match(r"^  (\w+)\s+(\S+)( %)?\s+(\w+)$", line)
        if not match:
            break
        shown[match[1]] = (match[3] is not None, match[4])
    assert set(shown) == set(metrics.names())
    for name, (has_percent, unit) in shown.items():
        assert unit == metrics.get(name).unit
        assert has_percent == (unit == "percent"), name
    section = out.stdout[out.stdout.index("Signal quality") :].split("\nRun ")[0]
    assert "%" not in section  # shares and returns are fractions there


def test_compare_ranks_by_each_metric_own_direction():
    from pokewatch_core.cli.compare import default_ascending

    metrics = get_plugins().metrics
    for name in metrics.names():
        better = metrics.get(name).greater_is_better
        assert default_ascending(name) == (better is False), name
    assert default_ascending("mase") and not default_ascending("skill_vs_naive")
    assert not default_ascending("no_such_metric")
