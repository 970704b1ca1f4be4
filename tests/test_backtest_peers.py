"""PokeWatch's backtests against the peer libraries: statsforecast's ``cross_validation`` and
utilsforecast's ``evaluate`` (the ``peers`` dependency group; marked slow, so the README's quick
command leaves them out and CI's slow run has them).

On a dense daily panel (every card priced on every date) the baseline moving average of
``window_size=w`` is statsforecast's ``WindowAverage(window_size=w)`` (``Naive()`` for w = 1),
forecast for forecast to 1e-9, rows matched by (card, cutoff, date); and utilsforecast's losses
per card (and per card and cutoff) are PokeWatch's figures of that card.

Definitions, as read in statsforecast 2.0 (``core.py``: ``GroupedArray.cross_validation`` and
``_StatsForecast.cross_validation``; ``models.py``: ``_window_average``) and utilsforecast 0.2
(``processing.cv_times``, ``losses``, ``evaluation.evaluate``), and where they differ:

* Cutoffs. statsforecast counts *rows of each series*: ``test_size = h + step_size *
  (n_windows - 1)``, window ``i``'s cutoff is the series' row ``len - test_size + i *
  step_size - 1`` (its date is the ``cutoff`` column), the model sees the series' rows up to
  and including it, and forecasts the next ``h`` rows. PokeWatch counts *periods of a calendar
  shared by every card* (``cutoffs.py``): the last cutoff is ``horizon`` periods before the
  data's last date, the others ``step`` periods apart before it; a forecast from cutoff ``c``
  is for every card's row at ``c + h`` whatever rows the card has. On a dense panel whose cards
  share their first and last dates the two are the same dates; on gappy data statsforecast's
  cutoffs differ per card and its "h steps ahead" are rows, not days.
* Too little data. statsforecast refuses a series of ``test_size`` rows or fewer; PokeWatch
  refuses windows whose earliest cutoff has no period on or before it (the same count on a
  dense panel) or, with ``input_size``, fewer than ``input_size`` periods on or before it.
* Short histories. ``WindowAverage`` forecasts NaN from fewer than ``window_size`` values;
  PokeWatch averages what there is, down to ``min_periods`` (default 1). ``min_periods =
  window_size`` is statsforecast's rule (tested below both ways).
* Missing prices. statsforecast takes the target as given (a NaN in the window makes the mean
  NaN); PokeWatch averages the last ``window_size`` *observed* prices. Not compared: the panel
  here has none.
* Sliding window. statsforecast's ``input_size`` keeps the last ``input_size`` rows up to the
  cutoff; where fewer exist, the Python slice silently keeps what there is, and an
  ``input_size`` below ``window_size`` makes every ``WindowAverage`` forecast NaN. PokeWatch's
  ``input_size`` keeps the last ``input_size`` periods, refuses an earliest cutoff with fewer
  before it and refuses an ``input_size`` shorter than the model's ``window_size``
  (``ConfigError``). Where both run, the forecasts are the same.
* Every-date mode. PokeWatch's default cutoffs (every date, ``evaluate(..., horizon=H)``) also
  forecast from cutoffs whose horizon runs past the data's last date (only the rows inside the
  data) and list, as NaN, the rows whose cutoff is before the first date. statsforecast's
  ``step_size=1, n_windows=T - H`` is the subset of whole windows with a cutoff on a date.
* Losses. utilsforecast's ``mape`` is a fraction (``|y - yhat| / |y|`` averaged, a zero
  target dropped as NaN); PokeWatch's ``mape`` is a percent (x 100; a zero market price gives
  an infinite ratio). ``rmse`` and ``mae`` are the same. ``evaluate`` groups by id *and by
  the ``cutoff`` column when there is one*: without it a card's loss pools every forecast of
  that card (PokeWatch's figures of the card), with it the loss is per (card, cutoff)
  (PokeWatch's ``backtest.by_cutoff`` of the card). PokeWatch's pooled figures pool every
  forecast of every card (utilsforecast with a single id); utilsforecast's ``agg_fn="mean"``
  averages the cards' losses instead, which is not the same number.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import pokewatch_core as pw
from pokewatch_core.errors import ConfigError

pytestmark = pytest.mark.slow


@functools.cache
def peers() -> SimpleNamespace:
    """The peer libraries, imported when a test first needs them (never at collection, so the
    quick command, which deselects these tests, runs without the group)."""
    if os.environ.get("CI"):  # CI installs the group: a missing peer is a failure there
        import statsforecast
        import utilsforecast
    else:
        hint = "needs the peers group: uv sync --group peers"
        statsforecast = pytest.importorskip("statsforecast", reason=hint)
        utilsforecast = pytest.importorskip("utilsforecast", reason=hint)
    import statsforecast.models
    import utilsforecast.evaluation
    import utilsforecast.losses

    losses = utilsforecast.losses
    return SimpleNamespace(
        StatsForecast=statsforecast.StatsForecast,
        Naive=statsforecast.models.Naive,
        WindowAverage=statsforecast.models.WindowAverage,
        evaluate=utilsforecast.evaluation.evaluate,
        losses=[losses.rmse, losses.mae, losses.mape],
    )


@pytest.fixture(autouse=True)
def _needs_peers() -> None:
    peers()


MODEL = "baseline_moving_average"
METRICS = ["rmse", "mae", "mape"]
TOL = 1e-9
NIXTLA = {"card_id": "unique_id", "date": "ds", "market_price": "y"}
KEY = ["card_id", "cutoff", "date"]


def dense_panel(cards: int = 12, days: int = 90, seed: int = 22) -> pd.DataFrame:
    """``pw.generate_prices``'s panel made dense: every card priced on every date (a day
    without a listing, or without a price, carries the card's last price; the first day
    without one takes the next)."""
    raw = pw.generate_prices(cards=cards, days=days, seed=seed)
    wide = raw.pivot(index="date", columns="card_id", values="market_price")
    dates = pd.date_range(wide.index.min(), wide.index.max(), freq="D")
    wide = wide.reindex(dates).ffill().bfill()
    long = wide.rename_axis(index="date", columns="card_id").stack().rename("market_price")
    out = long.reset_index()[["card_id", "date", "market_price"]]
    out["card_id"] = out["card_id"].astype(str)
    out["date"] = out["date"].astype("datetime64[ns]")
    return out.sort_values(["card_id", "date"], ignore_index=True)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    df = dense_panel()
    assert df["market_price"].notna().all()
    assert df.groupby("card_id").size().eq(df["date"].nunique()).all()  # dense
    return df


def _peer_model(w: int):
    return peers().Naive() if w == 1 else peers().WindowAverage(window_size=w)


def statsforecast_cv(df: pd.DataFrame, w: int, h: int, n: int, s: int, **kw) -> pd.DataFrame:
    """statsforecast's forecasts in PokeWatch's column names (card_id, cutoff, date,
    market_price, predicted_price), sorted by (card, cutoff, date)."""
    model = _peer_model(w)
    sf = peers().StatsForecast(models=[model], freq="D")
    cv = sf.cross_validation(df=df.rename(columns=NIXTLA), h=h, n_windows=n, step_size=s, **kw)
    cv = cv.rename(columns={v: k for k, v in NIXTLA.items()} | {str(model): "predicted_price"})
    return _normalised(cv)


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[[*KEY, "market_price", "predicted_price"]].copy()
    out["card_id"] = out["card_id"].astype(str)
    for column in ("cutoff", "date"):
        out[column] = pd.to_datetime(out[column]).astype("datetime64[ns]")
    return out.sort_values(KEY, ignore_index=True)


def pokewatch_forecasts(result: pw.EvaluationResult) -> pd.DataFrame:
    return _normalised(result.forecasts)


def assert_same_forecasts(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    """The same (card, cutoff, date) rows, the same market prices, the same forecasts to
    1e-9 (NaN where the other is NaN)."""
    assert len(ours) == len(theirs)
    assert not ours.duplicated(KEY).any()
    merged = ours.merge(theirs, on=KEY, how="outer", suffixes=("", "_peer"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    np.testing.assert_array_equal(merged["market_price"], merged["market_price_peer"])
    np.testing.assert_allclose(
        merged["predicted_price"], merged["predicted_price_peer"], rtol=0, atol=TOL
    )


def run(df: pd.DataFrame, w: int, min_periods: int = 1, **options) -> pw.EvaluationResult:
    params = {"window_size": w, "min_periods": min_periods}
    return pw.evaluate(MODEL, df, params=params, metrics=METRICS, **options)


# (window_size, h, n_windows, step_size): adjacent windows, overlapping (step < h), gaps
# between them (step > h), one window, horizon 1
COMBOS = [
    (1, 1, 1, 1),
    (1, 7, 4, 7),
    (3, 7, 4, 7),
    (3, 1, 10, 1),
    (5, 14, 3, 5),
    (7, 3, 5, 9),
    (14, 28, 2, 28),
]


@pytest.mark.parametrize(("w", "h", "n", "s"), COMBOS)
def test_windows_forecast_for_forecast_as_statsforecast(panel, w, h, n, s):
    result = run(panel, w, horizon=h, windows=n, step=s)
    ours = pokewatch_forecasts(result)
    theirs = statsforecast_cv(panel, w, h, n, s)
    assert len(theirs) == panel["card_id"].nunique() * n * h
    assert_same_forecasts(ours, theirs)
    assert (ours["date"] - ours["cutoff"]).dt.days.between(1, h).all()
    # the same cutoff dates, shared by every card
    assert sorted(result.backtest.by_cutoff["cutoff"]) == [
        d.date().isoformat() for d in sorted(theirs["cutoff"].unique())
    ]


def test_short_history_statsforecast_is_min_periods_window_size(panel):
    """12 dates, w = 5, windows of 3 from cutoffs 3 apart: the first cutoff has 3 prices.
    ``WindowAverage`` gives NaN there; PokeWatch's default (``min_periods=1``) the mean of the
    3, and ``min_periods=5`` the same NaN."""
    short = panel[panel["date"] < panel["date"].min() + pd.Timedelta(days=12)]
    w, h, n, s = 5, 3, 3, 3
    theirs = statsforecast_cv(short, w, h, n, s)
    first = theirs["cutoff"] == theirs["cutoff"].min()
    assert theirs.loc[first, "predicted_price"].isna().all()
    assert theirs.loc[~first, "predicted_price"].notna().all()
    assert_same_forecasts(
        pokewatch_forecasts(run(short, w, w, horizon=h, windows=n, step=s)), theirs
    )

    ours = pokewatch_forecasts(run(short, w, horizon=h, windows=n, step=s))
    assert_same_forecasts(ours[~first.to_numpy()], theirs[~first])
    # the first cutoff's forecast: the mean of the card's 3 prices on or before it
    means = short.groupby("card_id")["market_price"].apply(lambda p: p.iloc[:3].mean())
    got = ours[first.to_numpy()].groupby("card_id")["predicted_price"].agg(["min", "max"])
    np.testing.assert_allclose(got["min"], means.loc[got.index], rtol=0, atol=TOL)
    np.testing.assert_allclose(got["max"], means.loc[got.index], rtol=0, atol=TOL)


@pytest.mark.parametrize(("w", "input_size"), [(1, 1), (1, 10), (3, 3), (3, 8), (7, 20)])
def test_sliding_window_input_size_as_statsforecast(panel, w, input_size):
    h, n, s = 7, 4, 7
    result = run(panel, w, horizon=h, windows=n, step=s, input_size=input_size)
    theirs = statsforecast_cv(panel, w, h, n, s, input_size=input_size)
    assert_same_forecasts(pokewatch_forecasts(result), theirs)
    assert result.params["input_size"] == input_size


def test_sliding_window_shorter_than_the_window_is_refused_where_statsforecast_gives_nan(panel):
    theirs = statsforecast_cv(panel, 5, 7, 2, 7, input_size=3)
    assert theirs["predicted_price"].isna().all()
    with pytest.raises(ConfigError, match="input_size 3 is shorter than the model needs"):
        run(panel, 5, horizon=7, windows=2, step=7, input_size=3)


def test_every_date_mode_holds_statsforecasts_step_one_windows(panel):
    """Every date at horizon H: on the cutoffs both have (whole windows, cutoff on a date),
    the same forecasts; PokeWatch's other forecasts are from the last H - 1 cutoffs (inside
    the data only) and, as NaN, from before the first date."""
    w, h = 3, 5
    dates = panel["date"].nunique()
    ours = pokewatch_forecasts(run(panel, w, w, horizon=h))
    theirs = statsforecast_cv(panel, w, h, dates - h, 1)
    first, last = panel["date"].min(), panel["date"].max()
    whole = (ours["cutoff"] >= first) & (ours["cutoff"] <= last - pd.Timedelta(days=h))
    assert_same_forecasts(ours[whole], theirs)
    rest = ours[~whole]
    before = rest["cutoff"] < first
    assert rest.loc[before, "predicted_price"].isna().all()
    assert rest.loc[~before, "predicted_price"].notna().all()
    assert (rest.loc[~before, "date"] <= last).all()


def _by_card(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """utilsforecast's rmse, mae, mape of ``frame`` (PokeWatch's column names) grouped by
    ``by`` (one id column, plus ``cutoff`` if listed), one row per group, mape in percent."""
    data = frame.rename(columns={"market_price": "y", "date": "ds"})
    if "cutoff" not in by:
        data = data.drop(columns="cutoff")
    data = data[[*by, "ds", "y", "predicted_price"]]
    scores = peers().evaluate(
        data, metrics=peers().losses, id_col=by[0], models=["predicted_price"]
    )
    wide = scores.pivot_table(index=by, columns="metric", values="predicted_price")
    wide["mape"] *= 100.0  # a fraction in utilsforecast, a percent in PokeWatch
    return wide[METRICS]


@pytest.mark.parametrize(("w", "h", "n", "s"), [(3, 7, 4, 7), (1, 5, 3, 2)])
def test_utilsforecast_losses_per_card_are_pokewatchs(panel, w, h, n, s):
    theirs = statsforecast_cv(panel, w, h, n, s)
    per_card = _by_card(theirs, ["card_id"])
    per_card_cutoff = _by_card(theirs, ["card_id", "cutoff"])

    # PokeWatch on each card's own rows: its pooled figures and its table by cutoff
    cards = sorted(panel["card_id"].unique())
    for card in cards[:5]:
        alone = run(panel[panel["card_id"] == card], w, horizon=h, windows=n, step=s)
        for metric in METRICS:
            assert alone.metrics[metric] == pytest.approx(
                per_card.loc[card, metric], rel=0, abs=TOL
            ), (card, metric)
        table = alone.backtest.by_cutoff.set_index("cutoff")
        expected = per_card_cutoff.loc[card]
        expected.index = [pd.Timestamp(c).date().isoformat() for c in expected.index]
        np.testing.assert_allclose(table.loc[expected.index, METRICS], expected, rtol=0, atol=TOL)

    # every card at once, from the whole panel's forecasts frame
    result = run(panel, w, horizon=h, windows=n, step=s)
    f = pokewatch_forecasts(result)
    err = f["predicted_price"] - f["market_price"]
    ours = pd.DataFrame(
        {
            "rmse": (err**2).groupby(f["card_id"]).mean() ** 0.5,
            "mae": err.abs().groupby(f["card_id"]).mean(),
            "mape": (err.abs() / f["market_price"]).groupby(f["card_id"]).mean() * 100,
        }
    )
    np.testing.assert_allclose(ours.loc[per_card.index], per_card, rtol=0, atol=TOL)

    # the pooled figures pool every forecast: utilsforecast with a single id; per horizon:
    # utilsforecast with the horizon as the id
    one = theirs.assign(all="all", horizon=(theirs["date"] - theirs["cutoff"]).dt.days)
    pooled = _by_card(one, ["all"]).loc["all"]
    for metric in METRICS:
        assert result.metrics[metric] == pytest.approx(pooled[metric], rel=0, abs=TOL)
    by_horizon = _by_card(one, ["horizon"])
    for step in range(1, h + 1):
        for metric in METRICS:
            got = result.backtest.by_horizon[step][metric]
            assert got == pytest.approx(by_horizon.loc[step, metric], rel=0, abs=TOL)
    # and utilsforecast's mean over cards is another number
    mean_of_cards = per_card["rmse"].mean()
    assert abs(mean_of_cards - result.metrics["rmse"]) > TOL
