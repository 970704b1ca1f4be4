"""Signal quality and a simple long-only strategy over an evaluation frame.

Definitions (all over *signalled* rows: rows with a market price, a prediction and a signal):

* **Forward price** of a row: the card's market price ``horizon`` observations later (the
  ``horizon``-th next signalled row of the same card). Rows without one do not count in the
  precision, recall, lift and forward-return figures.
* **Rise / fall**: forward price above / below the row's market price.
* ``buy_precision`` = rises among BUY rows / BUY rows; ``sell_precision`` = falls among SELL rows
  / SELL rows; ``buy_recall`` = BUY rows among rises / rises; ``sell_recall`` likewise for falls;
  ``buy_lift`` = buy_precision / (rises / rows), ``sell_lift`` = sell_precision /
  (falls / rows). Undefined (no such rows) is NaN.
* ``mean_forward_return_buy`` / ``_sell``: mean of ``forward / market - 1`` over BUY / SELL rows.
* **Strategy** (long only, one unit of capital per position, equal weight across cards): a card
  is entered on a BUY and exited on a SELL (HOLD and missing signals keep the position). On each
  observation of a card, the position held coming in earns ``price / previous price``; an entry
  or exit multiplies that row's growth by ``1 - fee_pct``. The day's return is the mean growth
  of the card-rows that are *active* that day (held coming in, or entered) minus 1, and 0 when
  none are. ``strategy_total_return`` = product of (1 + daily return) - 1;
  ``strategy_sharpe`` = mean / standard deviation of the period returns x
  sqrt(periods_per_year) (NaN with fewer than two periods or no variation); periods_per_year
  is inferred from the median spacing of each card's observations (daily 365, weekly 52,
  monthly 12, …) unless given; ``strategy_max_drawdown`` = largest fall of the equity curve
  from its running peak, as a positive fraction; ``turnover`` = entries and exits per
  position-day (active card-rows).
* **Buy and hold** (for the plot): each day, the mean of ``price / previous price`` over the
  cards observed that day after an earlier observation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of
from pokewatch_core.components import SIGNALS
from pokewatch_core.data import (
    DATE,
    ID,
    PRICE,
    category_codes,
    day_numbers,
    same_buffers,
    sort_keys,
    strictly_sorted,
)

BUY, SELL = 0, 1
T = TypeVar("T")


@dataclass(frozen=True)
class SignalRows:
    """The signalled rows of a frame, sorted by card and date."""

    card: np.ndarray[Any, Any]
    day: np.ndarray[Any, Any]
    price: np.ndarray[Any, np.dtype[np.float64]]
    signal: np.ndarray[Any, Any]  # 0 BUY, 1 SELL, 2 HOLD
    # Results derived from these rows (quality per horizon, backtest per fee): the dozen
    # signal metrics of one evaluation compute each once.
    derived: dict[tuple[str, float], Any] = field(default_factory=dict, repr=False, compare=False)

    def memo(self, key: tuple[str, float], compute: Callable[[], T]) -> T:
        """``compute()``, once per key for these rows."""
        if key not in self.derived:
            self.derived[key] = compute()
        return cast(T, self.derived[key])


def signal_codes(column: pd.Series[Any]) -> np.ndarray[Any, Any]:
    """Signals as codes 0 BUY, 1 SELL, 2 HOLD, -1 missing."""
    if isinstance(column.dtype, pd.CategoricalDtype) and tuple(column.cat.categories) == SIGNALS:
        return category_codes(column)
    values = pd.Categorical(column, categories=list(SIGNALS))
    return np.asarray(values.codes)


def _sources(frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], ...] | None:
    """The arrays behind the columns used, or None if any is not a plain array."""
    if not isinstance(frame["signal"].dtype, pd.CategoricalDtype):
        return None
    arrays = [codes_of(frame[ID])[0], category_codes(frame["signal"])]
    for column in (DATE, PRICE, "predicted_price"):
        values = frame[column].to_numpy()
        if values.dtype == object:
            return None
        arrays.append(values)
    return tuple(arrays)


# The last frame's arrays (kept alive, so their memory cannot be reused by another frame while
# cached) and its signal rows.
_last: tuple[tuple[np.ndarray[Any, Any], ...], SignalRows] | None = None


def signal_rows(frame: pd.DataFrame) -> SignalRows:
    """Rows with a market price, a prediction and a signal, sorted by (card, date).

    The result is reused for the same frame (the same column arrays), so that the dozen
    signal metrics of one evaluation sort once; a frame edited in place in between is not
    noticed, so copy a frame before editing it.
    """
    global _last
    sources = _sources(frame)
    if sources is not None and _last is not None and same_buffers(sources, _last[0]):
        return _last[1]
    rows = _signal_rows(frame)
    _last = (sources, rows) if sources is not None else None
    return rows


def _signal_rows(frame: pd.DataFrame) -> SignalRows:
    market = frame[PRICE].to_numpy(dtype=np.float64)
    predicted = frame["predicted_price"].to_numpy(dtype=np.float64)
    codes = signal_codes(frame["signal"])
    keep = ~np.isnan(market) & ~np.isnan(predicted) & (codes >= 0)
    card = codes_of(frame[ID])[0]
    dates = frame[DATE].to_numpy()
    if dates.dtype.kind != "M":  # a frame that did not come from evaluate()
        dates = np.asarray(frame[DATE], dtype="datetime64[ns]")
    card, dates = card[keep].astype(np.int64), dates[keep]
    price, signal = market[keep], codes[keep]
    day = day_numbers(dates)
    if not strictly_sorted(card, dates):
        order = np.argsort(sort_keys(card, day), kind="stable")
        card, day, price, signal = card[order], day[order], price[order], signal[order]
    return SignalRows(card, day, price, signal)


def forward_returns(rows: SignalRows, horizon: int = 1) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``price[i + horizon] / price[i] - 1`` within the card; NaN where there is none."""
    n = len(rows.price)
    out = np.full(n, np.nan)
    if horizon < 1 or n <= horizon:
        return out
    same = rows.card[horizon:] == rows.card[:-horizon]
    out[:-horizon] = np.where(same, rows.price[horizon:] / rows.price[:-horizon] - 1.0, np.nan)
    return out


@dataclass(frozen=True)
class SignalQuality:
    """Precision, recall, lift and mean forward returns of BUY and SELL signals."""

    buy_precision: float
    sell_precision: float
    buy_recall: float
    sell_recall: float
    buy_lift: float
    sell_lift: float
    mean_forward_return_buy: float
    mean_forward_return_sell: float


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _count(mask: np.ndarray[Any, Any]) -> int:
    return int(np.count_nonzero(mask))


def signal_quality(frame: pd.DataFrame, horizon: int = 1) -> SignalQuality:
    """The signal-quality figures of the module docstring."""
    rows = signal_rows(frame)
    return rows.memo(("quality", horizon), lambda: _signal_quality(rows, horizon))


def _signal_quality(rows: SignalRows, horizon: int) -> SignalQuality:
    ret = forward_returns(rows, horizon)
    has = ~np.isnan(ret)
    ret, sig = ret[has], rows.signal[has]
    rise, fall = ret > 0, ret < 0
    buy, sell = sig == BUY, sig == SELL
    n = len(ret)
    buy_p = _ratio(_count(buy & rise), _count(buy))
    sell_p = _ratio(_count(sell & fall), _count(sell))
    return SignalQuality(
        buy_precision=buy_p,
        sell_precision=sell_p,
        buy_recall=_ratio(_count(buy & rise), _count(rise)),
        sell_recall=_ratio(_count(sell & fall), _count(fall)),
        buy_lift=_ratio(buy_p, _ratio(_count(rise), n)),
        sell_lift=_ratio(sell_p, _ratio(_count(fall), n)),
        mean_forward_return_buy=float(ret[buy].mean()) if buy.any() else float("nan"),
        mean_forward_return_sell=float(ret[sell].mean()) if sell.any() else float("nan"),
    )


@dataclass(frozen=True)
class Backtest:
    """Daily results of the long-only strategy and of buy-and-hold."""

    dates: pd.DatetimeIndex
    strategy_returns: np.ndarray[Any, np.dtype[np.float64]]
    buy_and_hold_returns: np.ndarray[Any, np.dtype[np.float64]]
    trades: int
    position_days: int
    periods_per_year: float = 365.0  # inferred from the data's spacing (see periods_per_year)

    @property
    def equity(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Strategy equity, starting from 1."""
        return np.asarray(np.cumprod(1.0 + self.strategy_returns))

    @property
    def buy_and_hold_equity(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Buy-and-hold equity, starting from 1."""
        return np.asarray(np.cumprod(1.0 + self.buy_and_hold_returns))

    @property
    def total_return(self) -> float:
        return float(self.equity[-1] - 1.0) if len(self.equity) else float("nan")

    @property
    def sharpe(self) -> float:
        """Sharpe ratio annualised by the periods per year inferred from the data."""
        return self.sharpe_at(self.periods_per_year)

    def sharpe_at(self, periods_per_year: float) -> float:
        """Mean / standard deviation of the period returns x sqrt(periods_per_year)."""
        r = self.strategy_returns
        if len(r) < 2:
            return float("nan")
        sd = float(np.std(r, ddof=1))
        return float(np.mean(r) / sd * np.sqrt(periods_per_year)) if sd > 0 else float("nan")

    @property
    def max_drawdown(self) -> float:
        equity = self.equity
        if not len(equity):
            return float("nan")
        peak = np.maximum.accumulate(np.maximum(equity, 1.0))
        return float(np.max(1.0 - equity / peak))

    @property
    def turnover(self) -> float:
        return _ratio(self.trades, self.position_days)


def backtest(frame: pd.DataFrame, fee_pct: float = 0.0) -> Backtest:
    """Run the long-only strategy of the module docstring over ``frame``'s signals."""
    rows = signal_rows(frame)
    return rows.memo(("backtest", fee_pct), lambda: _backtest(rows, fee_pct))


# Conventional periods per year by the typical spacing of observations, in days.
_FREQUENCIES = ((1.5, 365.0), (9.0, 52.0), (16.0, 26.0), (35.0, 12.0), (95.0, 4.0), (190.0, 2.0))


SPACING_ROWS = 1_000_000


def periods_per_year(rows: SignalRows) -> float:
    """Periods per year of the data, from the median spacing of each card's consecutive
    observations: daily 365, weekly 52, fortnightly 26, monthly 12, quarterly 4, half-yearly 2,
    yearly 1 (and 365 / spacing for anything coarser). 365 when no card has two rows."""
    card, day = rows.card[:SPACING_ROWS], rows.day[:SPACING_ROWS]  # plenty for a median
    same = card[1:] == card[:-1]
    gaps = (day[1:] - day[:-1])[same]
    if not len(gaps):
        return 365.0
    # gaps are whole days: the median from their histogram (np.median's partition is slow on
    # millions of equal values)
    counts = np.bincount(np.clip(gaps, 0, 1000))
    spacing = float(np.searchsorted(np.cumsum(counts), (len(gaps) + 1) // 2))
    for limit, periods in _FREQUENCIES:
        if spacing <= limit:
            return periods
    return 1.0 if spacing <= 400 else 365.0 / spacing


def _backtest(rows: SignalRows, fee_pct: float) -> Backtest:
    n = len(rows.price)
    if not n:
        empty = np.empty(0)
        return Backtest(pd.DatetimeIndex([]), empty, empty, 0, 0)
    first = np.ones(n, dtype=bool)
    first[1:] = rows.card[1:] != rows.card[:-1]
    # position after each row: 1 after BUY, 0 after SELL, else carried (per card, from 0)
    state = np.where(rows.signal == BUY, 1.0, np.where(rows.signal == SELL, 0.0, np.nan))
    state[first & np.isnan(state)] = 0.0
    position = pd.Series(state).ffill().to_numpy()
    held_in = np.zeros(n)
    held_in[1:] = np.where(first[1:], 0.0, position[:-1])
    growth_price = np.ones(n)
    growth_price[1:] = np.where(first[1:], 1.0, rows.price[1:] / rows.price[:-1])
    traded = position != held_in
    active = (held_in > 0) | traded
    growth = np.where(held_in > 0, growth_price, 1.0) * np.where(traded, 1.0 - fee_pct, 1.0)

    # days are small integers: index them directly instead of sorting for np.unique
    first_day = int(rows.day.min())
    day_index = rows.day - first_day
    n_days = int(day_index.max()) + 1
    rows_per_day = np.bincount(day_index, minlength=n_days)
    active_count = np.bincount(day_index, weights=active, minlength=n_days)
    active_growth = np.bincount(day_index, weights=np.where(active, growth, 0.0), minlength=n_days)
    with np.errstate(invalid="ignore", divide="ignore"):
        strategy = np.where(active_count > 0, active_growth / active_count - 1.0, 0.0)
    observed = ~first
    bh_count = np.bincount(day_index, weights=observed, minlength=n_days)
    bh_sum = np.bincount(day_index, weights=np.where(observed, growth_price, 0.0), minlength=n_days)
    with np.errstate(invalid="ignore", divide="ignore"):
        buy_and_hold = np.where(bh_count > 0, bh_sum / bh_count - 1.0, 0.0)
    present = rows_per_day > 0  # days with no signalled row are not trading days
    days = np.flatnonzero(present) + first_day
    strategy, buy_and_hold = strategy[present], buy_and_hold[present]
    dates = pd.DatetimeIndex((days * 86_400 * 10**9).astype("datetime64[ns]"))
    return Backtest(
        dates=dates,
        strategy_returns=strategy,
        buy_and_hold_returns=buy_and_hold,
        trades=int(np.count_nonzero(traded)),
        position_days=int(np.count_nonzero(active)),
        periods_per_year=periods_per_year(rows),
    )


def metrics_by_card(frame: pd.DataFrame) -> pd.DataFrame:
    """Per card (sorted by id): scored rows, rmse, mape (percent) and the count of each
    signal."""
    codes, cards = codes_of(frame[ID])
    present = codes >= 0
    card = codes[present]
    n_cards = len(cards)
    market = frame[PRICE].to_numpy(dtype=np.float64)[present]
    error = frame["predicted_price"].to_numpy(dtype=np.float64)[present] - market
    scored = ~np.isnan(error)
    error = np.where(scored, error, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ape = np.where(scored, np.abs(error) / market, 0.0)
    signal = signal_codes(frame["signal"])[present]

    def per_card(weights: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        return np.bincount(card, weights=weights, minlength=n_cards)

    count = per_card(scored.astype(np.float64))
    n = np.where(count > 0, count, np.nan)
    out = pd.DataFrame(
        {
            ID: np.asarray(cards, dtype=object),
            "scored_rows": count.astype(np.int64),
            "rmse": np.sqrt(per_card(error * error) / n),
            "mape": per_card(ape) / n * 100.0,
            "buy": per_card((signal == BUY).astype(np.float64)).astype(np.int64),
            "sell": per_card((signal == SELL).astype(np.float64)).astype(np.int64),
            "hold": per_card((signal == 2).astype(np.float64)).astype(np.int64),
        }
    )
    used = per_card() > 0
    return out.loc[used].sort_values(ID, kind="stable", ignore_index=True)
