"""A backtest's figures per cutoff, computed for many cutoffs in one pass
(``Statistic.compute_groups``, pokewatch_core.evaluation.cutoff_blocks), equal the figures of
each cutoff's own frame (the path every statistic without ``compute_groups`` takes), and
``group_sums`` equals a sum over each group's slice on both of its paths."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pokewatch_core as pw
from pokewatch_core import statistics
from pokewatch_core.evaluation import horizons
from tests.conftest import make_panel, panels


@pytest.mark.parametrize("sliced", [True, False])
@given(
    sizes=st.lists(st.integers(0, 6), min_size=1, max_size=40),
    seed=st.integers(0, 1000),
    boolean=st.booleans(),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_group_sums_is_the_sum_of_each_slice(monkeypatch, sliced, sizes, seed, boolean):
    # both paths: each slice apart (few groups) and one pass (many groups)
    monkeypatch.setattr(statistics, "SLICED_GROUPS", 10_000 if sliced else 0)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    rng = np.random.default_rng(seed)
    values = rng.random(int(starts[-1]))
    if boolean:
        values = values > 0.5
    got = pw.group_sums(starts, values)
    expected = [float(np.sum(values[a:b])) for a, b in pairwise(starts)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pw.group_sums(starts), np.diff(starts))
    np.testing.assert_array_equal(pw.group_rows(starts), np.repeat(np.arange(len(sizes)), sizes))


def _by_cutoff(frame: pd.DataFrame, grouped: bool, monkeypatch, **options) -> pd.DataFrame:
    with monkeypatch.context() as patch:
        if not grouped:  # every statistic on each cutoff's own frame
            patch.setattr(horizons, "_groups_at_once", lambda statistic: False)
        result = pw.evaluate("baseline_moving_average", frame, **options)
    assert result.backtest is not None
    return result.backtest.by_cutoff


def _same_tables(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a["cutoff"].tolist() == b["cutoff"].tolist()
    numbers = [c for c in a.columns if c != "cutoff"]
    np.testing.assert_allclose(
        a[numbers].to_numpy(dtype=float), b[numbers].to_numpy(dtype=float), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize(
    "options",
    [
        {"horizon": 3},
        {"horizon": 4, "windows": 3, "step": 2},
        {"horizon": 2, "input_size": 4},
    ],
)
def test_cutoffs_in_one_pass_equal_each_cutoff_alone(monkeypatch, options):
    # gaps, NaN prices, shuffled rows: every default metric, every cutoff
    frame = make_panel(cards=5, days=40, seed=4, nan_rate=0.1, gap_rate=0.2)
    _same_tables(
        _by_cutoff(frame, True, monkeypatch, **options),
        _by_cutoff(frame, False, monkeypatch, **options),
    )


def test_many_cutoffs_in_small_blocks_equal_each_cutoff_alone(monkeypatch):
    # more groups than group_sums sums apart, and cutoffs spread over several blocks
    from pokewatch_core.evaluation import cutoff_blocks

    frame = make_panel(cards=3, days=200, seed=8, nan_rate=0.05, gap_rate=0.1)
    alone = _by_cutoff(frame, False, monkeypatch, horizon=2)
    monkeypatch.setattr(cutoff_blocks, "BLOCK_ROWS", 300)
    monkeypatch.setattr(statistics, "SLICED_GROUPS", 16)
    built = []
    block = cutoff_blocks.CutoffBlocks.block
    monkeypatch.setattr(
        cutoff_blocks.CutoffBlocks, "block", lambda self, i: built.append(i) or block(self, i)
    )
    _same_tables(_by_cutoff(frame, True, monkeypatch, horizon=2), alone)
    assert len(built) > 1 and len(alone) > 16 * len(built)


@pytest.mark.slow  # a few seconds of examples: CI's slow run has them
@given(frame=panels(max_cards=4, max_days=20), horizon=st.integers(2, 4))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_cutoff_figures_do_not_depend_on_the_path(monkeypatch, frame, horizon):
    try:
        grouped = _by_cutoff(frame, True, monkeypatch, horizon=horizon)
    except pw.ConfigError:  # too few dates for the horizon: refused (tests/test_backtests.py)
        assume(False)
    _same_tables(grouped, _by_cutoff(frame, False, monkeypatch, horizon=horizon))


def test_a_statistic_returning_too_few_groups_is_a_plugin_error():
    @dataclass(frozen=True)
    class ShortGroups(statistics.Sums):
        def compute(self, frame, history):
            return (float(len(frame)),)

        def compute_groups(self, frame, history, starts):
            return [(1.0,)]  # one value, whatever the number of groups

    @dataclass
    class Rows(pw.Metric):
        name: ClassVar[str] = "rows_counted"
        description: ClassVar[str] = "Rows, through a statistic that miscounts its groups."
        unit: ClassVar[str] = "count"
        greater_is_better: ClassVar[bool | None] = None

        def statistic(self):
            return ShortGroups()

        def finalize(self, value):
            return value[0]

    frame = make_panel(cards=2, days=12, seed=1)
    with pytest.raises(pw.PluginError, match=r"compute_groups returned 1 values for \d+ groups"):
        pw.evaluate("baseline_moving_average", frame, metrics=[Rows()], horizon=2)
