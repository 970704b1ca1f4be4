"""Backtests: horizons, cutoffs, refits and sliding windows (pokewatch_core.evaluation.cutoffs).

The contract these tests pin, each on frames written by hand (expected numbers worked out by
hand, or by a small loop here that shares nothing with the code under test):

* A *cutoff* is a calendar date shared by every card; a model at a cutoff sees every card's
  rows dated on or before it.
* A *horizon* counts the panel's periods: days for daily data, weeks for weekly data (the
  calendar's period is the greatest common divisor of the gaps between dates), months for
  monthly data (every date on one day of the month, or every date a month's end).
* A row at period ``p`` is a target at horizon ``h`` exactly when ``p - h`` is a cutoff; a card
  with no row at a target date has no forecast there.
* Every-date mode (the default): each row is forecast from each of the ``horizon`` periods
  before it, also from periods before the data begins (those forecasts have no history: NaN).
* ``windows=N, step=S``: N cutoffs S periods apart, the last ``horizon`` periods before the
  data's last date (statsforecast's ``n_windows``/``step_size``).
* ``test_start``: every period from the one before it is a cutoff; the model is fitted once.
* ``refit``: every window (default), every K windows, or once; a model's fit sees only the
  rows dated on or before the first cutoff of its refit group (that allows any row).
* ``input_size``: a sliding window, the rows of the last ``input_size`` periods up to the cutoff.
* ``horizon=1`` at every date (no refit, no sliding window) is the one-step evaluation,
  unchanged: one fit on every row, one predict over the whole history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pokewatch_core as pw
from pokewatch_core import ConfigError, Model
from pokewatch_plugins.baseline import BaselineMovingAverage
from tests.conftest import make_panel, panels

BASELINE = "baseline_moving_average"
LAST = {"window_size": 1}  # the baseline as "the last observed price"
DAY = pd.Timedelta(days=1)


def panel(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """A price table from ``(card, date, price)`` rows."""
    frame = pd.DataFrame(rows, columns=["card_id", "date", "market_price"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def daily(prices: dict[str, list[float | None]], start: str = "2025-01-01") -> pd.DataFrame:
    """One row per card and day from ``start`` (``None``: no row that day)."""
    first = pd.Timestamp(start)
    rows = [
        (card, str((first + i * DAY).date()), float(p))
        for card, series in prices.items()
        for i, p in enumerate(series)
        if p is not None
    ]
    return panel(rows)


def forecasts_of(result: pw.EvaluationResult) -> dict[tuple[str, str, str, int], float]:
    """``(card, cutoff, date, horizon) -> predicted`` of a backtest, dates as ISO text."""
    f = result.forecasts
    return {
        (c, str(cut.date()), str(d.date()), int(h)): float(p)
        for c, cut, d, h, p in zip(
            f["card_id"], f["cutoff"], f["date"], f["horizon"], f["predicted_price"], strict=True
        )
    }


def same(a: dict, b: dict) -> bool:
    """Equal mappings of floats, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a
    )


def cutoffs_of(result: pw.EvaluationResult) -> list[str]:
    return [str(d.date()) for d in result.backtest.cutoffs.dates()]


@dataclass
class Plain(BaselineMovingAverage):
    """The baseline as an ordinary model: called once per cutoff with only the history that
    cutoff allows (the vectorised baseline must give the same numbers)."""

    name: ClassVar[str] = "plain_moving_average"
    answers_cutoffs: ClassVar[bool] = False


# --- every-date horizons ------------------------------------------------------------------


def test_every_date_forecasts_each_row_from_each_of_the_horizon_days_before_it():
    """Daily, two cards, horizon 2, the last price: a row dated d is forecast at horizon 1 from
    cutoff d-1 (the price of d-1) and at horizon 2 from cutoff d-2 (the price of d-2). The
    first rows' forecasts come from cutoffs before the data: no history, NaN."""
    data = daily({"a": [10, 11, 13, 16, 20], "b": [100, 90, 80, 70, 60]})
    result = pw.evaluate(BASELINE, data, horizon=2, params=LAST, metrics=["rmse", "dataset_size"])
    nan = float("nan")
    expected = {}
    for card, prices in (("a", [10, 11, 13, 16, 20]), ("b", [100, 90, 80, 70, 60])):
        for i in range(5):
            date = pd.Timestamp("2025-01-01") + i * DAY
            for h in (1, 2):
                value = float(prices[i - h]) if i - h >= 0 else nan
                expected[(card, str((date - h * DAY).date()), str(date.date()), h)] = value
    assert same(forecasts_of(result), expected)
    assert len(result.forecasts) == 5 * 2 * 2  # rows x horizons
    # a: errors 1, 2, 3, 4 at h1; 3, 5, 7 at h2. b: 10 each at h1, 20 each at h2
    assert result.metrics["rmse_h1"] == pytest.approx(math.sqrt((1 + 4 + 9 + 16 + 4 * 100) / 8))
    assert result.metrics["rmse_h2"] == pytest.approx(math.sqrt((9 + 25 + 49 + 3 * 400) / 6))
    assert result.metrics["rmse"] == pytest.approx(math.sqrt((430 + 1283) / 14))
    assert result.metrics["dataset_size_h1"] == 8
    assert result.metrics["dataset_size_h2"] == 6
    assert result.metrics["dataset_size"] == 14
    assert result.backtest.by_horizon[2]["rmse"] == result.metrics["rmse_h2"]
    assert cutoffs_of(result)[:2] == ["2024-12-30", "2024-12-31"]  # before the data
    assert cutoffs_of(result)[-1] == "2025-01-04"  # the last date is no cutoff


def test_every_date_moving_average_uses_the_prices_up_to_the_cutoff_only():
    """Window 2, horizon 3: the row of 2025-01-05 at horizon 3 is forecast from cutoff
    2025-01-02, the mean of the prices of 01-01 and 01-02 (not of 01-03 and 01-04)."""
    data = daily({"a": [10, 20, 40, 80, 160]})
    result = pw.evaluate(BASELINE, data, horizon=3, params={"window_size": 2}, metrics=["rmse"])
    got = forecasts_of(result)
    assert got[("a", "2025-01-02", "2025-01-05", 3)] == 15.0
    assert got[("a", "2025-01-03", "2025-01-05", 2)] == 30.0
    assert got[("a", "2025-01-04", "2025-01-05", 1)] == 60.0
    assert got[("a", "2025-01-01", "2025-01-04", 3)] == 10.0  # one price: min_periods 1
    assert math.isnan(got[("a", "2024-12-31", "2025-01-03", 3)])


# --- windows and step --------------------------------------------------------------------


def test_windows_are_spaced_step_days_apart_and_end_horizon_days_before_the_last_date():
    """Ten days, horizon 2, three windows three days apart: the last cutoff is day 10 - 2 =
    day 8, then days 5 and 2. Each cutoff forecasts the two days after it, nothing else."""
    data = daily({"a": [float(i) for i in range(1, 11)], "b": [10.0 * i for i in range(1, 11)]})
    result = pw.evaluate(BASELINE, data, horizon=2, windows=3, step=3, params=LAST)
    assert cutoffs_of(result) == ["2025-01-02", "2025-01-05", "2025-01-08"]
    expected = {}
    for card, scale in (("a", 1.0), ("b", 10.0)):
        for cutoff in (2, 5, 8):
            for h in (1, 2):
                cut = pd.Timestamp("2025-01-01") + (cutoff - 1) * DAY
                expected[(card, str(cut.date()), str((cut + h * DAY).date()), h)] = scale * cutoff
    assert same(forecasts_of(result), expected)
    assert len(result.forecasts) == 3 * 2 * 2  # windows x horizon x cards
    assert list(result.backtest.by_cutoff["cutoff"]) == cutoffs_of(result)
    params = result.params
    assert (params["cutoffs"], params["cutoff_count"], params["step"]) == ("windows", 3, 3)
    assert (params["first_cutoff"], params["last_cutoff"]) == ("2025-01-02", "2025-01-08")


def test_overlapping_windows_and_the_default_step():
    """step 1 < horizon 3: a date is a target of several cutoffs (one per horizon); without
    step the windows are horizon periods apart."""
    data = daily({"a": [float(i) for i in range(1, 11)]})
    overlapping = pw.evaluate(BASELINE, data, horizon=3, windows=3, step=1, params=LAST)
    assert cutoffs_of(overlapping) == ["2025-01-05", "2025-01-06", "2025-01-07"]
    got = forecasts_of(overlapping)
    assert got[("a", "2025-01-05", "2025-01-07", 2)] == 5.0
    assert got[("a", "2025-01-06", "2025-01-07", 1)] == 6.0
    assert len(got) == 9
    spaced = pw.evaluate(BASELINE, data, horizon=3, windows=2, params=LAST)
    assert cutoffs_of(spaced) == ["2025-01-04", "2025-01-07"]
    assert spaced.params["step"] == 3


# --- ragged panels ----------------------------------------------------------------------


RAGGED = daily(
    {
        "a": [1, 2, 3, 4, 5, 6],  # every day
        "b": [10, 20, None, None, 50, 60],  # no rows on days 3 and 4
        "c": [None, None, None, 400, 500, 600],  # listed on day 4
        "d": [7, 8, 9, None, None, None],  # delisted after day 3
    }
)


def test_a_ragged_panel_forecasts_only_rows_that_exist_from_the_history_each_cutoff_allows():
    """Horizon 2, windows 2, step 1 on days 1..6: cutoffs days 3 and 4.

    * a gap inside a card (b has no row on day 4): no forecast at day 4; later targets use
      b's last price on or before the cutoff (day 2's 20);
    * a card listed late (c, from day 4): its targets exist but have no history at cutoff 3
      (NaN, not scored); at cutoff 4 its first price is the forecast;
    * a card delisted early (d, to day 3): no target rows, no forecasts.
    """
    result = pw.evaluate(
        BASELINE, RAGGED, horizon=2, windows=2, step=1, params=LAST,
        metrics=["rmse", "dataset_size"],
    )  # fmt: skip
    nan = float("nan")
    expected = {
        ("a", "2025-01-03", "2025-01-04", 1): 3.0,
        ("a", "2025-01-03", "2025-01-05", 2): 3.0,
        ("a", "2025-01-04", "2025-01-05", 1): 4.0,
        ("a", "2025-01-04", "2025-01-06", 2): 4.0,
        ("b", "2025-01-03", "2025-01-05", 2): 20.0,
        ("b", "2025-01-04", "2025-01-05", 1): 20.0,
        ("b", "2025-01-04", "2025-01-06", 2): 20.0,
        ("c", "2025-01-03", "2025-01-04", 1): nan,
        ("c", "2025-01-03", "2025-01-05", 2): nan,
        ("c", "2025-01-04", "2025-01-05", 1): 400.0,
        ("c", "2025-01-04", "2025-01-06", 2): 400.0,
    }
    assert same(forecasts_of(result), expected)
    table = result.backtest.by_cutoff.set_index("cutoff")
    # cutoff 3: errors -1, -2 (a), -30 (b); c not scored
    assert table.loc["2025-01-03", "rmse"] == pytest.approx(math.sqrt((1 + 4 + 900) / 3))
    assert table.loc["2025-01-03", "dataset_size"] == 3
    # cutoff 4: -1, -2 (a), -30, -40 (b), -100, -200 (c)
    squares = 1 + 4 + 900 + 1600 + 100**2 + 200**2
    assert table.loc["2025-01-04", "rmse"] == pytest.approx(math.sqrt(squares / 6))
    assert table.loc["2025-01-04", "dataset_size"] == 6


def test_every_date_on_a_ragged_panel_forecasts_each_row_at_each_horizon():
    """Every existing row is a target at every horizon (16 rows x 3); a card listed late has
    NaN forecasts from cutoffs before its first row; a delisted card's forecasts stop with
    its rows."""
    result = pw.evaluate(BASELINE, RAGGED, horizon=3, params=LAST, metrics=["rmse"])
    f = result.forecasts
    assert len(f) == len(RAGGED) * 3
    c = f[f["card_id"] == "c"].set_index(["date", "horizon"])["predicted_price"]
    assert c[(pd.Timestamp("2025-01-05"), 1)] == 400.0
    assert np.isnan(c[(pd.Timestamp("2025-01-05"), 2)])  # cutoff day 3, before c's listing
    assert f.loc[f["card_id"] == "d", "date"].max() == pd.Timestamp("2025-01-03")
    b = f[f["card_id"] == "b"].set_index(["date", "horizon"])["predicted_price"]
    assert b[(pd.Timestamp("2025-01-05"), 1)] == 20.0  # gap: last price on or before day 4


# --- monthly and weekly data --------------------------------------------------------------


def test_monthly_data_on_the_first_counts_horizons_in_months():
    """Dates on the 1st of each month (no row in April): horizon 2, two windows a month
    apart, the last two months before June: cutoffs March 1 and April 1 (a date with no
    row). The April target has no row, so no forecast."""
    data = panel(
        [
            ("a", "2025-01-01", 1.0),
            ("a", "2025-02-01", 2.0),
            ("a", "2025-03-01", 3.0),
            ("a", "2025-05-01", 5.0),
            ("a", "2025-06-01", 6.0),
        ]
    )
    result = pw.evaluate(BASELINE, data, horizon=2, windows=2, step=1, params=LAST)
    assert result.params["period"] == "monthly"
    assert cutoffs_of(result) == ["2025-03-01", "2025-04-01"]
    assert forecasts_of(result) == {
        ("a", "2025-03-01", "2025-05-01", 2): 3.0,
        ("a", "2025-04-01", "2025-05-01", 1): 3.0,
        ("a", "2025-04-01", "2025-06-01", 2): 3.0,
    }


def test_month_ends_count_as_months_including_a_leap_february():
    data = panel(
        [
            ("a", "2023-12-31", 1.0),
            ("a", "2024-01-31", 2.0),
            ("a", "2024-02-29", 3.0),
            ("a", "2024-03-31", 4.0),
            ("a", "2024-04-30", 5.0),
        ]
    )
    result = pw.evaluate(BASELINE, data, horizon=2, windows=1, params=LAST)
    assert result.params["period"] == "monthly"
    assert forecasts_of(result) == {
        ("a", "2024-02-29", "2024-03-31", 1): 3.0,
        ("a", "2024-02-29", "2024-04-30", 2): 3.0,
    }
    every = pw.evaluate(BASELINE, data, horizon=1, windows=3, step=1, params=LAST)
    assert cutoffs_of(every) == ["2024-01-31", "2024-02-29", "2024-03-31"]


def test_weekly_data_counts_horizons_in_weeks():
    """Mondays (one card skips a week): the period is 7 days, a horizon-2 forecast of a
    Monday comes from the Monday two weeks before."""
    mondays = [pd.Timestamp("2025-01-06") + 7 * i * DAY for i in range(6)]
    rows = [("a", str(d.date()), float(i + 1)) for i, d in enumerate(mondays)]
    rows += [("b", str(d.date()), 10.0 * (i + 1)) for i, d in enumerate(mondays) if i != 2]
    data = panel(rows)
    result = pw.evaluate(BASELINE, data, horizon=2, params=LAST, metrics=["rmse"])
    assert result.params["period"] == "every 7 days"
    f = result.forecasts
    assert ((f["date"] - f["cutoff"]) == f["horizon"] * 7 * DAY).all()
    got = forecasts_of(result)
    assert got[("a", "2025-01-20", "2025-02-03", 2)] == 3.0
    assert got[("b", "2025-01-20", "2025-02-03", 2)] == 20.0  # b has no row on 01-20
    windows = pw.evaluate(BASELINE, data, horizon=2, windows=2, step=1, params=LAST)
    assert cutoffs_of(windows) == ["2025-01-20", "2025-01-27"]  # the last: 2 weeks before


# --- refits: what fit and predict see ------------------------------------------------------


@dataclass
class Recording(Model):
    """Learns the mean of the prices it was fitted on and predicts it; records the last date
    each fit saw and, per predict, the history's first and last date and the rows asked."""

    name: ClassVar[str] = "recording"
    description: ClassVar[str] = "predicts the mean price of its fit, records what it saw"
    fits: list = field(default_factory=list, init=False)
    predicts: list = field(default_factory=list, init=False)
    level: float = field(default=float("nan"), init=False)

    def fit(self, history):
        self.fits.append(history["date"].max())
        self.level = float(history["market_price"].mean())
        return self

    def predict(self, history, at):
        cutoff = at["cutoff"] if "cutoff" in at.columns else None
        self.predicts.append((history["date"].min(), history["date"].max(), at, cutoff))
        return np.full(len(at), self.level)


@dataclass
class RecordingVectorised(Recording):
    """The same, answering many cutoffs in one call (the history is then the whole table)."""

    name: ClassVar[str] = "recording_vectorised"
    answers_cutoffs: ClassVar[bool] = True


TWELVE = daily({"a": [float(i) for i in range(1, 13)], "b": [float(i) for i in range(1, 13)]})
DAYS = [pd.Timestamp("2025-01-01") + i * DAY for i in range(12)]


def day(n: int) -> pd.Timestamp:
    """The n-th day of TWELVE (1-based)."""
    return DAYS[n - 1]


@pytest.mark.parametrize(
    ("refit", "fitted_at"),
    [
        (True, [5, 6, 7, 8, 9, 10]),
        (False, [5]),
        (4, [5, 9]),
        (2, [5, 7, 9]),
        ("every", [5, 6, 7, 8, 9, 10]),
    ],
)
def test_refit_schedule_and_no_look_ahead_of_an_ordinary_model(refit, fitted_at):
    """Six windows a day apart, horizon 2, on 12 days: cutoffs days 5..10. Each fit sees the
    rows up to its group's first cutoff, each predict the rows up to its own cutoff; the
    forecasts are the mean price (1..k) of the group's fit."""
    model = Recording()
    result = pw.evaluate(model, TWELVE, horizon=2, windows=6, step=1, refit=refit, metrics=["rmse"])
    assert model.fits == [day(n) for n in fitted_at]
    assert len(model.predicts) == 6
    for cutoff, (_, seen, at, column) in zip(range(5, 11), model.predicts, strict=True):
        assert column is None  # an ordinary model never sees a cutoff column
        assert seen == day(cutoff)  # the history ends at the cutoff
        assert set(at["date"]) == {day(cutoff + 1), day(cutoff + 2)}
    groups = {c: max(n for n in fitted_at if n <= c) for c in range(5, 11)}
    f = result.forecasts
    for cutoff, first in groups.items():
        values = f.loc[f["cutoff"] == day(cutoff), "predicted_price"]
        assert (values == (1 + first) / 2).all()  # the mean of 1..first


@pytest.mark.parametrize(
    ("refit", "fitted_at"), [(True, [5, 6, 7, 8, 9, 10]), (False, [5]), (3, [5, 8])]
)
def test_refit_schedule_of_a_vectorised_model(refit, fitted_at):
    """A model that answers cutoffs is fitted once per refit group (on the rows up to the
    group's first cutoff) and called once per group, both horizons' target rows stacked with
    each row's cutoff in `at`: every row's cutoff lies in its group, after the fit's last
    date."""
    model = RecordingVectorised()
    pw.evaluate(model, TWELVE, horizon=2, windows=6, step=1, refit=refit, metrics=["rmse"])
    assert model.fits == [day(n) for n in fitted_at]
    assert len(model.predicts) == len(fitted_at)  # per group: the horizons in one call
    bounds = [*fitted_at, 11]
    for i, (_, _, at, column) in enumerate(model.predicts):
        low, high = bounds[i], bounds[i + 1] - 1
        assert column is not None
        assert at["cutoff"].min() >= day(low) and at["cutoff"].max() <= day(high)
        steps = set((at["date"] - at["cutoff"]) // DAY)
        assert steps == {1, 2}  # both horizons, each row once per horizon it is a target at
        assert len(at) == 2 * 2 * (high - low + 1)  # 2 cards x 2 horizons x the cutoffs
        assert at.index.is_unique  # a row stacked twice still has labels of its own


def test_a_refit_group_whose_first_cutoff_has_no_target_is_fitted_as_of_that_cutoff():
    """No rows on days 7 and 8: the first of three windows (cutoff day 6, horizon 2) has no
    target. Fitted once, the model still learns from the rows up to day 6 only, not from the
    rows up to the next cutoff (day 9) where its first forecast is made."""
    data = daily({"a": [1, 2, 3, 4, 5, 6, None, None, 9, 10, 11, 12, 13, 14]})
    model = Recording()
    result = pw.evaluate(model, data, horizon=2, windows=3, step=3, refit=False, metrics=["rmse"])
    assert cutoffs_of(result) == ["2025-01-06", "2025-01-09", "2025-01-12"]
    assert model.fits == [day(6)]
    assert (result.forecasts["predicted_price"] == 3.5).all()  # the mean of days 1..6
    assert set(result.forecasts["cutoff"]) == {day(9), day(12)}


def test_test_start_fits_once_on_the_rows_before_it_and_forecasts_every_date_from_the_day_before():
    model = Recording()
    result = pw.evaluate(model, TWELVE, horizon=2, test_start="2025-01-09", metrics=["rmse"])
    assert model.fits == [day(8)]
    assert [seen for _, seen, _, _ in model.predicts] == [day(8), day(9), day(10), day(11)]
    assert cutoffs_of(result) == ["2025-01-08", "2025-01-09", "2025-01-10", "2025-01-11"]
    f = result.forecasts
    assert f["date"].min() == day(9)
    assert set(f.loc[f["horizon"] == 2, "date"]) == {day(10), day(11), day(12)}
    assert (f["predicted_price"] == 4.5).all()  # the mean of days 1..8
    # and refit every window when asked
    again = Recording()
    pw.evaluate(again, TWELVE, horizon=2, test_start="2025-01-09", refit=True, metrics=["rmse"])
    assert again.fits == [day(8), day(9), day(10), day(11)]


def test_the_one_step_evaluation_fits_once_on_every_row_and_predicts_per_cutoff():
    """horizon 1 at every date, no refit asked: fitted once on every row, as before (the
    one-step numbers unchanged), but an ordinary model predicts once per cutoff with only the
    rows before the date it predicts (it cannot look ahead); asking for refits fits at every
    cutoff instead."""
    model = Recording()
    result = pw.evaluate(model, TWELVE, metrics=["rmse"])
    assert result.backtest is None
    assert model.fits == [day(12)]
    assert len(model.predicts) == 11  # the cutoffs day 1..11 (day 0: no history)
    assert all(seen <= at["date"].min() - DAY for _, seen, at, _ in model.predicts)
    refitted = Recording()
    pw.evaluate(refitted, TWELVE, refit=True, metrics=["rmse"])
    assert refitted.fits == [day(n) for n in range(1, 12)]
    assert all(seen <= at["date"].min() - DAY for _, seen, at, _ in refitted.predicts)


# --- sliding windows ----------------------------------------------------------------------


def test_a_sliding_window_hands_only_the_last_input_size_days():
    """input_size 3: at cutoff c a model sees the rows of days c-2..c, and is fitted on them."""
    model = Recording()
    pw.evaluate(model, TWELVE, horizon=2, windows=3, step=2, input_size=3, metrics=["rmse"])
    # cutoffs: day 10, 8, 6
    assert model.fits == [day(6), day(8), day(10)]
    assert [(first, last) for first, last, _, _ in model.predicts] == [
        (day(4), day(6)),
        (day(6), day(8)),
        (day(8), day(10)),
    ]


def test_a_sliding_window_drops_older_prices_of_the_moving_average():
    """Window 3 of the baseline, input_size 3, on a card with no row on day 6; two windows of
    horizon 1: cutoffs days 6 and 7. At cutoff 6 the sliding window (days 4..6) holds the
    prices of days 4 and 5 only: the forecast is their mean, not that of the last three prices
    (days 3, 4, 5). The ordinary (per-cutoff) and vectorised baselines agree."""
    data = daily({"a": [1, 2, 4, 8, 16, None, 64, 128]})
    options = dict(horizon=1, windows=2, step=1, input_size=3, metrics=["rmse"])
    got = forecasts_of(pw.evaluate(BASELINE, data, **options))
    assert got == {
        ("a", "2025-01-06", "2025-01-07", 1): (8 + 16) / 2,  # expanding: (4 + 8 + 16) / 3
        ("a", "2025-01-07", "2025-01-08", 1): (16 + 64) / 2,  # expanding: (8 + 16 + 64) / 3
    }
    assert got == forecasts_of(pw.evaluate(Plain(), data, **options))
    expanding = forecasts_of(pw.evaluate(BASELINE, data, **{**options, "input_size": None}))
    assert expanding[("a", "2025-01-06", "2025-01-07", 1)] == pytest.approx(28 / 3)


# --- the one-step evaluation and horizon 1 ------------------------------------------------


def test_horizon_1_at_every_date_is_the_one_step_evaluation_exactly():
    data = make_panel(cards=5, days=30, seed=2, nan_rate=0.05, gap_rate=0.1)
    default = pw.evaluate(BASELINE, data)
    explicit = pw.evaluate(BASELINE, data, horizon=1)
    assert explicit.backtest is None
    assert explicit.metrics.keys() == default.metrics.keys()
    for name, value in default.metrics.items():
        assert value == explicit.metrics[name] or (
            np.isnan(value) and np.isnan(explicit.metrics[name])
        ), name
    pd.testing.assert_frame_equal(explicit.frame, default.frame)


def test_horizon_1_through_the_backtest_gives_the_one_step_metrics():
    """The same forecasts through the backtest's machinery (a sliding window longer than the
    data is the expanding history; horizon 3's horizon-1 metrics): every metric equals the
    one-step one (to the last bits of a sum taken in another order)."""
    data = make_panel(cards=5, days=30, seed=2, nan_rate=0.05, gap_rate=0.1)
    default = pw.evaluate(BASELINE, data)
    long_window = pw.evaluate(BASELINE, data, horizon=1, input_size=10**6)
    three = pw.evaluate(BASELINE, data, horizon=3)
    for name, value in default.metrics.items():
        for got in (long_window.metrics[name], three.metrics[f"{name}_h1"]):
            assert (np.isnan(value) and np.isnan(got)) or got == pytest.approx(value, rel=1e-12), (
                name
            )
    assert long_window.metrics.keys() == default.metrics.keys()  # horizon 1: no _h1 keys


# --- pooled, per horizon and per cutoff -----------------------------------------------------


def test_pooled_and_per_cutoff_metrics_are_those_of_the_forecasts_table():
    data = make_panel(cards=4, days=20, seed=7, nan_rate=0.05, gap_rate=0.15)
    result = pw.evaluate(
        BASELINE, data, horizon=3, windows=4, step=2, metrics=["rmse", "mae", "dataset_size"]
    )
    f = result.forecasts.dropna(subset=["market_price", "predicted_price"])
    error = f["predicted_price"] - f["market_price"]
    assert result.metrics["rmse"] == pytest.approx(float(np.sqrt((error**2).mean())), rel=1e-12)
    assert result.metrics["mae"] == pytest.approx(float(error.abs().mean()), rel=1e-12)
    assert result.metrics["dataset_size"] == len(f)
    for h in (1, 2, 3):
        e = error[f["horizon"] == h]
        assert result.metrics[f"rmse_h{h}"] == pytest.approx(float(np.sqrt((e**2).mean())))
    table = result.backtest.by_cutoff.set_index("cutoff")
    for cutoff, e in error.groupby(f["cutoff"]):
        key = str(cutoff.date())
        assert table.loc[key, "rmse"] == pytest.approx(float(np.sqrt((e**2).mean())))
        assert table.loc[key, "dataset_size"] == len(e)


def test_relative_metrics_compare_with_the_naive_forecast_from_the_same_cutoff():
    """One window at day 3 (price 4), horizon 3, baseline window 2 (forecast 3 = mean(2, 4)).
    The naive forecast of every target is the last price on or before the cutoff (4), not the
    price the day before the target. The MASE scale is the mean one-step change of the
    metrics' history (the rows up to the first cutoff: 1, 2, 4: changes 1 and 2)."""
    data = daily({"a": [1, 2, 4, 8, 16, 32]})
    metrics = ["mae", "skill_vs_naive", "directional_accuracy", "mase"]
    result = pw.evaluate(
        BASELINE, data, horizon=3, windows=1, params={"window_size": 2}, metrics=metrics
    )
    m = result.metrics
    model_errors, naive_errors = [5, 13, 29], [4, 12, 28]  # |3 - 8|, |3 - 16|, |3 - 32|; |4 - .|
    for h in (1, 2, 3):
        assert m[f"mae_h{h}"] == model_errors[h - 1]
        assert m[f"skill_vs_naive_h{h}"] == pytest.approx(
            1 - model_errors[h - 1] / naive_errors[h - 1]
        )
        assert m[f"directional_accuracy_h{h}"] == 0.0  # forecast below the naive, market above
        assert m[f"mase_h{h}"] == pytest.approx(model_errors[h - 1] / 1.5)
    assert m["skill_vs_naive"] == pytest.approx(1 - 47 / 44)
    assert m["mase"] == pytest.approx((47 / 3) / 1.5)
    row = result.backtest.by_cutoff.iloc[0]
    assert row["cutoff"] == "2025-01-03"
    assert row["skill_vs_naive"] == pytest.approx(1 - 47 / 44)


def test_the_naive_forecast_itself_has_no_skill_at_any_horizon():
    data = make_panel(cards=4, days=25, seed=3, nan_rate=0.05, gap_rate=0.1)
    result = pw.evaluate(BASELINE, data, horizon=4, params=LAST, metrics=["skill_vs_naive"])
    for h in range(1, 5):
        assert result.metrics[f"skill_vs_naive_h{h}"] == 0.0
    assert (result.backtest.by_cutoff["skill_vs_naive"].dropna() == 0.0).all()


# --- refused before any run -----------------------------------------------------------------


@dataclass
class MustNotRun(Model):
    """Fails the test if the evaluation ever reaches it."""

    name: ClassVar[str] = "must_not_run"
    description: ClassVar[str] = "raises if fitted or asked"

    def history_needed(self):
        return 3

    def fit(self, history):
        raise AssertionError("fitted: the options should have been refused first")

    def predict(self, history, at):
        raise AssertionError("predicted: the options should have been refused first")


FOUR_DAYS = daily({"a": [1.0, 2.0, 3.0, 4.0]})
ONE_DAY = daily({"a": [1.0], "b": [2.0]})


@pytest.mark.parametrize(
    ("data", "options", "error", "needles"),
    [
        (FOUR_DAYS, dict(horizon=0), ConfigError, ["horizon must be 1 or more, got 0"]),
        (FOUR_DAYS, dict(horizon=-2), ConfigError, ["horizon"]),
        (FOUR_DAYS, dict(horizon=1.5), ConfigError, ["horizon must be a whole number"]),
        (FOUR_DAYS, dict(windows=2, step=0), ConfigError, ["step must be 1 or more, got 0"]),
        (FOUR_DAYS, dict(windows=0), ConfigError, ["windows must be 1 or more"]),
        (FOUR_DAYS, dict(step=2), ConfigError, ["step", "needs windows"]),
        (FOUR_DAYS, dict(input_size=0), ConfigError, ["input_size must be 1 or more"]),
        (FOUR_DAYS, dict(refit="sometimes"), ConfigError, ["refit", "sometimes"]),
        (
            FOUR_DAYS,
            dict(windows=2, test_start="2025-01-03"),
            ConfigError,
            ["test_start and windows"],
        ),
        (
            FOUR_DAYS,
            dict(horizon=2, windows=2),
            ConfigError,
            ["windows 2 of horizon 2", "2025-01-01..2025-01-04", "at most 1 window fits"],
        ),
        (
            FOUR_DAYS,
            dict(horizon=3, windows=1, input_size=3),
            ConfigError,
            ["windows 1 of horizon 3", "need 6 periods", "2025-01-01..2025-01-04"],
        ),
        (
            FOUR_DAYS,
            dict(horizon=2, input_size=2),
            ConfigError,
            ["input_size 2 is shorter than the model needs (3 periods", "2025-01-01..2025-01-04"],
        ),
        (
            FOUR_DAYS,
            dict(horizon=4),
            ConfigError,
            ["horizon 4 is longer than the data", "2025-01-01..2025-01-04", "3 days ahead"],
        ),
        (
            FOUR_DAYS,
            dict(horizon=2, test_start="2025-01-04"),
            ConfigError,
            ["horizon 2", "test_start 2025-01-04", "1 day ahead"],
        ),
        (
            ONE_DAY,
            dict(horizon=2),
            ConfigError,
            ["horizon", "one date, 2025-01-01", "at least two dates"],
        ),
        (ONE_DAY, dict(windows=1), ConfigError, ["windows", "one date, 2025-01-01"]),
    ],
)
def test_bad_backtest_options_are_refused_before_any_run(data, options, error, needles):
    """One line naming the option (and, where the data decides, the data's range); the model
    is neither fitted nor asked."""
    with pytest.raises(error) as caught:
        pw.evaluate(MustNotRun(), data, metrics=["rmse"], **options)
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_a_test_start_after_the_data_is_a_data_error():
    with pytest.raises(pw.DataError, match="no rows on or after test_start 2026-01-01"):
        pw.evaluate(MustNotRun(), FOUR_DAYS, horizon=2, test_start="2026-01-01")


def test_horizon_1_on_a_single_date_is_still_the_one_step_evaluation():
    result = pw.evaluate(BASELINE, ONE_DAY, metrics=["dataset_size"])
    assert result.metrics["dataset_size"] == 0  # no earlier price: nothing to score


# --- laws (hypothesis) ----------------------------------------------------------------------


@st.composite
def dense_panels(draw: st.DrawFn) -> pd.DataFrame:
    """Every card on every day, shuffled rows."""
    cards = draw(st.integers(1, 4))
    days = draw(st.integers(4, 14))
    prices = st.floats(0.5, 500, allow_nan=False, allow_infinity=False)
    rows = [
        (f"c{c}", pd.Timestamp("2025-02-01") + d * DAY, draw(prices))
        for c in range(cards)
        for d in range(days)
    ]
    frame = pd.DataFrame(rows, columns=["card_id", "date", "market_price"])
    order = draw(st.permutations(range(len(frame))))
    return frame.iloc[list(order)].reset_index(drop=True)


@st.composite
def windows_on(draw: st.DrawFn, days: int) -> tuple[int, int, int]:
    """A horizon, a number of windows and a step that fit ``days`` days."""
    horizon = draw(st.integers(1, max(1, min(4, days - 1))))
    step = draw(st.integers(1, 3))
    most = (days - 1 - horizon) // step + 1
    count = draw(st.integers(1, max(1, most)))
    return horizon, count, step


LAWS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@LAWS
@given(dense_panels(), st.data())
def test_law_windows_on_dense_panels(frame, data):
    """On dense panels: N x H forecasts per card, the cutoffs are last - H - (N-1-i) S, and
    the last-price baseline's forecast is the card's price on its cutoff."""
    days = frame["date"].nunique()
    horizon, count, step = data.draw(windows_on(days))
    result = pw.evaluate(
        BASELINE, frame, horizon=horizon, windows=count, step=step, params=LAST, metrics=["rmse"]
    )
    last = frame["date"].max()
    expected_cutoffs = [last - (horizon + (count - 1 - i) * step) * DAY for i in range(count)]
    assert list(result.backtest.cutoffs.dates()) == expected_cutoffs
    f = result.forecasts
    assert len(f) == count * horizon * frame["card_id"].nunique()
    price = frame.set_index(["card_id", "date"])["market_price"]
    on_cutoff = [price[(c, cut)] for c, cut in zip(f["card_id"], f["cutoff"], strict=True)]
    np.testing.assert_array_equal(f["predicted_price"].to_numpy(), np.array(on_cutoff))
    assert ((f["date"] - f["cutoff"]) == f["horizon"] * DAY).all()


def reference_forecast(prices, card, cutoff, window, width=None):
    """The baseline's forecast from ``cutoff`` by a plain loop over ``prices`` (card -> its
    ``(date, price)`` pairs): the mean of the card's last ``window`` observed prices dated on
    or before the cutoff (and, with a sliding window of ``width`` days, after cutoff -
    width)."""
    seen = [
        price
        for date, price in prices.get(card, [])
        if date <= cutoff and (width is None or date > cutoff - width * DAY) and price == price
    ]
    return sum(reversed(seen[-window:])) / len(seen[-window:]) if seen else float("nan")


def period_of(frame: pd.DataFrame) -> tuple[pd.Timedelta, int]:
    """A daily panel's period (the gcd of the gaps between its dates) and how many periods
    its dates span (0 for a single date)."""
    dates = np.sort(frame["date"].unique())
    if len(dates) < 2:
        return DAY, 0
    gaps = np.diff(dates).astype("timedelta64[D]").astype(int)
    period = int(np.gcd.reduce(gaps))
    return period * DAY, int((dates[-1] - dates[0]).astype("timedelta64[D]").astype(int)) // period


@settings(LAWS, max_examples=15)  # two evaluations and a plain loop per example
@given(panels(max_cards=3, max_days=12), st.integers(2, 3), st.integers(1, 3), st.data())
def test_law_every_date_forecasts_equal_a_plain_loop_on_ragged_panels(frame, horizon, window, data):
    """Every row, every horizon: the moving average of the prices on or before its date minus
    h periods (with and without a sliding window), for the vectorised and the per-cutoff
    baseline."""
    period, reach = period_of(frame)
    if horizon > max(reach, 1):
        return  # refused: see test_bad_backtest_options_are_refused_before_any_run
    size = data.draw(st.one_of(st.none(), st.integers(window, window + 4)))
    options = dict(
        horizon=horizon, input_size=size, params={"window_size": window}, metrics=["rmse"]
    )
    result = pw.evaluate(BASELINE, frame, **options)
    plain = pw.evaluate(Plain(), frame, **options)
    assert same(forecasts_of(result), forecasts_of(plain))
    f = result.forecasts
    assert len(f) == len(frame) * horizon
    prices: dict[str, list] = {}
    rows = zip(frame["card_id"], frame["date"], frame["market_price"], strict=True)
    for card, date, price in sorted(rows):  # (card, date) pairs are unique
        prices.setdefault(card, []).append((date, price))
    for card, cutoff, date, h, got in zip(
        f["card_id"], f["cutoff"], f["date"], f["horizon"], f["predicted_price"], strict=True
    ):
        assert date - cutoff == h * period
        width = None if size is None else size * period.days
        want = reference_forecast(prices, card, cutoff, window, width)
        assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-12)


@settings(LAWS, max_examples=8)  # four evaluations per example
@given(dense_panels(), st.data())
def test_law_prices_after_a_cutoff_change_no_forecast_made_at_or_before_it(frame, data):
    """Perturb every price after a date D (values and missing prices): the forecasts from
    every cutoff on or before D are unchanged, for both kinds of model and every mode."""
    dates = np.sort(frame["date"].unique())
    moment = pd.Timestamp(dates[data.draw(st.integers(0, len(dates) - 2))])
    horizon, count, step = data.draw(windows_on(len(dates)))
    mode = data.draw(st.sampled_from(["every date", "windows", "sliding"]))
    options = {
        "every date": {},  # horizon 2 or more: horizon 1 is the one-step evaluation
        "windows": dict(windows=count, step=step),
        "sliding": dict(input_size=3),
    }[mode]
    if mode == "every date":
        horizon = max(horizon, 2)
    seed = data.draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    changed = frame.copy()
    later = (changed["date"] > moment).to_numpy()
    noise = rng.uniform(0.01, 10_000, len(changed))
    noise[rng.random(len(changed)) < 0.3] = np.nan
    changed.loc[later, "market_price"] = noise[later]
    for model in (BASELINE, Plain):
        before = pw.evaluate(model, frame, horizon=horizon, metrics=["rmse"], **options).forecasts
        after = pw.evaluate(model, changed, horizon=horizon, metrics=["rmse"], **options).forecasts
        keep = (before["cutoff"] <= moment).to_numpy()
        np.testing.assert_array_equal(
            before.loc[keep, "predicted_price"].to_numpy(),
            after.loc[keep, "predicted_price"].to_numpy(),
        )


@LAWS
@given(panels(max_cards=3, max_days=14), st.integers(2, 4))
def test_law_pooled_rmse_is_the_rmse_of_all_forecasts(frame, horizon):
    if horizon > period_of(frame)[1]:
        return
    result = pw.evaluate(BASELINE, frame, horizon=horizon, metrics=["rmse", "dataset_size"])
    f = result.forecasts.dropna(subset=["market_price", "predicted_price"])
    error = (f["predicted_price"] - f["market_price"]).to_numpy()
    assert result.metrics["dataset_size"] == len(f)
    if len(f):
        assert result.metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean(error**2))), rel=1e-9)
    else:
        assert np.isnan(result.metrics["rmse"])


@LAWS
@given(dense_panels(), st.data())
def test_law_fit_and_predict_never_see_past_their_cutoff(frame, data):
    """For random windows, refit schedules and sliding windows: every fit of an ordinary
    model sees only rows up to the first cutoff of its refit group, and every predict only
    the rows of its cutoff's window; the targets are the horizon periods after it."""
    dates = np.sort(frame["date"].unique())
    horizon, count, step = data.draw(windows_on(len(dates)))
    refit = data.draw(st.sampled_from([True, False, 2, 3]))
    size = data.draw(st.one_of(st.none(), st.integers(1, 4)))
    first = pd.Timestamp(dates[0])
    if size is not None and (len(dates) - 1 - horizon - (count - 1) * step) < size - 1:
        return  # the sliding window does not fit: refused (see the bad-input table)
    model = Recording()
    options = dict(horizon=horizon, windows=count, step=step, refit=refit, input_size=size)
    result = pw.evaluate(model, frame, metrics=["rmse"], **options)
    cutoffs = list(result.backtest.cutoffs.dates())
    every = {True: 1, False: len(cutoffs)}.get(refit, refit)
    group_starts = cutoffs[::every]
    assert model.fits == group_starts  # dense: each fit's last row is on its cutoff
    assert len(model.predicts) == len(cutoffs)
    for cutoff, (low, high, at, column) in zip(cutoffs, model.predicts, strict=True):
        assert column is None and high == cutoff
        assert low == (first if size is None else max(first, cutoff - (size - 1) * DAY))
        assert at["date"].min() == cutoff + DAY and at["date"].max() == cutoff + horizon * DAY


def test_the_plugin_guide_backtest_example_runs_as_printed(capsys, tmp_path):
    """docs/plugins.md, "Backtests: cutoffs and vectorised models": the block runs as a
    script, both models give the same forecasts, and the vectorised one passes the kit."""
    import runpy

    from pokewatch_core.testing import check_model
    from tests.test_documented_commands import code_blocks

    (block,) = [b for b in code_blocks("docs/plugins.md", "python") if "# backtest_models.py" in b]
    script = tmp_path / "backtest_models.py"
    script.write_text(block)
    namespace = runpy.run_path(str(script))
    printed = capsys.readouterr().out
    assert "last_price " in printed and "last_price_as_of " in printed
    prices, options = namespace["prices"], dict(horizon=7, windows=4, metrics=["rmse"])
    ordinary = pw.evaluate(namespace["LastPrice"](), prices, **options)
    vectorised = pw.evaluate(namespace["LastPriceAsOf"](), prices, **options)
    assert same(forecasts_of(ordinary), forecasts_of(vectorised))
    check_model(namespace["LastPriceAsOf"], examples=10)
