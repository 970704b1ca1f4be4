"""The long-only strategy and buy-and-hold, as the mergeable statistic ``Strategy(fee_pct)``
(the four strategy metrics of one fee read one).

Definitions (over *signalled* rows: rows with a market price, a prediction and a signal):

* **Strategy** (long only, one unit of capital per position, equal weight across cards): a card
  is entered on a BUY and exited on a SELL (HOLD and missing signals keep the position). On each
  observation of a card, the position held coming in earns ``price / previous price``; an entry
  or exit multiplies that row's growth by ``1 - fee_pct``. The day's return is the mean growth
  of the card-rows that are *active* that day (held coming in, or entered) minus 1, and 0 when
  none are. ``strategy_total_return`` = product of (1 + daily return) - 1;
  ``strategy_sharpe`` = mean / standard deviation of the period returns x
  sqrt(periods_per_year) (NaN with fewer than two periods or no variation); periods_per_year
  is inferred from the median spacing of the return series' dates (daily 365, weekly 52,
  monthly 12, …) unless given; ``strategy_max_drawdown`` = largest fall of the equity curve
  from its running peak, as a positive fraction; ``turnover`` = entries and exits per
  position-day (active card-rows).
* **Buy and hold** (for the plot): each day, the mean of ``price / previous price`` over the
  cards observed that day after an earlier observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.analysis.chunks import (
    BUY,
    SELL,
    SignalRows,
    grouped_signal_rows,
    ratio,
    signal_frame,
)
from pokewatch_core.data.tables import day_dates
from pokewatch_core.statistics import Statistic, group_rows, group_sums


@dataclass(frozen=True)
class Backtest:
    """Daily results of the long-only strategy and of buy-and-hold."""

    dates: pd.DatetimeIndex
    strategy_returns: np.ndarray[Any, np.dtype[np.float64]]
    buy_and_hold_returns: np.ndarray[Any, np.dtype[np.float64]]
    trades: int
    position_days: int
    periods_per_year: float = 365.0  # inferred from the data's spacing (see periods_per_year)
    fee_pct: float = 0.0  # charged on each entry and exit

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
        return ratio(self.trades, self.position_days)


# Conventional periods per year by the typical spacing of observations, in days.
_FREQUENCIES = ((1.5, 365.0), (9.0, 52.0), (16.0, 26.0), (35.0, 12.0), (95.0, 4.0), (190.0, 2.0))


def _periods_per_year(days: np.ndarray[Any, Any]) -> float:
    """Periods per year of a return series on these day numbers: by the median gap between
    consecutive dates, daily 365, weekly 52, fortnightly 26, monthly 12, quarterly 4,
    half-yearly 2, yearly 1, and 365 / gap for other spacings (every other day: 182.5).
    365 with fewer than two dates."""
    if len(days) < 2:
        return 365.0
    spacing = float(np.median(np.diff(days)))
    if 1.5 < spacing < 5:  # every few days: no calendar name
        return 365.0 / spacing
    for limit, periods in _FREQUENCIES:
        if spacing <= limit:
            return periods
    return 1.0 if spacing <= 400 else 365.0 / spacing


@dataclass(frozen=True)
class StrategyState:
    """Per-day sums behind ``Backtest`` (from ``first_day``, a day number): rows, active
    card-rows, their growth, observed card-rows, their price growth; and the trades and
    active card-rows in all. Exact to merge: sums of frames of different cards add up."""

    fee_pct: float
    first_day: int
    sums: np.ndarray[Any, np.dtype[np.float64]]  # shape (5, days)
    trades: int
    position_days: int

    def merge(self, other: StrategyState) -> StrategyState:
        """The state of both frames' rows (frames of different cards), on the union of days."""
        if not self.sums.shape[1]:
            return other
        if not other.sums.shape[1]:
            return self
        first = min(self.first_day, other.first_day)
        last = max(self.first_day + self.sums.shape[1], other.first_day + other.sums.shape[1])
        sums = np.zeros((5, last - first))
        for part in (self, other):
            at = part.first_day - first
            sums[:, at : at + part.sums.shape[1]] += part.sums
        return StrategyState(
            self.fee_pct,
            first,
            sums,
            self.trades + other.trades,
            self.position_days + other.position_days,
        )

    def finalize(self) -> Backtest:
        """The daily results of the strategy and of buy-and-hold."""
        rows_per_day, active_count, active_growth, bh_count, bh_sum = self.sums
        with np.errstate(invalid="ignore", divide="ignore"):
            strategy = np.where(active_count > 0, active_growth / active_count - 1.0, 0.0)
            buy_and_hold = np.where(bh_count > 0, bh_sum / bh_count - 1.0, 0.0)
        present = rows_per_day > 0  # days with no signalled row are not trading days
        days = np.flatnonzero(present) + self.first_day
        return Backtest(
            dates=pd.DatetimeIndex(day_dates(days)),
            strategy_returns=strategy[present],
            buy_and_hold_returns=buy_and_hold[present],
            trades=self.trades,
            position_days=self.position_days,
            periods_per_year=_periods_per_year(days),
            fee_pct=self.fee_pct,
        )


def strategy_state(frame: pd.DataFrame, fee_pct: float = 0.0) -> StrategyState:
    """The strategy state of ``frame`` (whole cards), chunk by chunk."""
    rows = signal_frame(frame)
    first_day, last_day = rows.day_range()
    n_days = max(last_day - first_day + 1, 0)
    sums = np.zeros((5, n_days))
    trades = position_days = 0
    for chunk in rows.chunks():
        if not len(chunk.price):
            continue
        counts, n_trades, n_active = _strategy_chunk(chunk, fee_pct, chunk.day - first_day, n_days)
        sums += counts
        trades += n_trades
        position_days += n_active
    return StrategyState(float(fee_pct), first_day, sums, trades, position_days)


def backtest(frame: pd.DataFrame, fee_pct: float = 0.0) -> Backtest:
    """Run the long-only strategy of the module docstring over ``frame``'s signals."""
    return strategy_state(frame, fee_pct).finalize()


def _strategy_rows(rows: SignalRows, fee_pct: float) -> tuple[np.ndarray[Any, Any], ...]:
    """Per row of a card-aligned run of rows: traded (entered or exited), active (held coming
    in, or traded), its growth, observed after an earlier row, and its price growth."""
    n = len(rows.price)
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
    return traded, active, growth, ~first, growth_price


def _day_sums(
    rows: SignalRows,
    day_index: np.ndarray[Any, Any],
    n_days: int,
    terms: tuple[np.ndarray[Any, Any], ...],
) -> np.ndarray[Any, Any]:
    """Per-day sums (rows, active rows, their growth, observed rows, their price growth)."""
    _, active, growth, observed, growth_price = terms

    def per_day(weights: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        return np.bincount(day_index, weights=weights, minlength=n_days)

    return np.stack(
        [
            per_day().astype(np.float64),
            per_day(active),
            per_day(np.where(active, growth, 0.0)),
            per_day(observed),
            per_day(np.where(observed, growth_price, 0.0)),
        ]
    )


def _strategy_chunk(
    rows: SignalRows, fee_pct: float, day_index: np.ndarray[Any, Any], n_days: int
) -> tuple[np.ndarray[Any, Any], int, int]:
    """Per-day sums of one card-aligned chunk (rows, active rows, their growth, observed
    rows, their price growth), its trades and its active rows."""
    terms = _strategy_rows(rows, fee_pct)
    traded, active = terms[0], terms[1]
    counts = _day_sums(rows, day_index, n_days, terms)
    return counts, int(np.count_nonzero(traded)), int(np.count_nonzero(active))


def strategy_states(
    frame: pd.DataFrame, starts: np.ndarray[Any, Any], fee_pct: float = 0.0
) -> list[StrategyState]:
    """The strategy state of each group of ``frame``'s rows (``Statistic.compute_groups``),
    in one pass: each group's days from its own first date, its cards traded apart."""
    rows, kept, days = grouped_signal_rows(frame, starts)
    begins = np.asarray(starts[:-1], dtype=np.int64)
    first = np.minimum.reduceat(days, begins) if len(days) else np.zeros(0, dtype=np.int64)
    spans = np.maximum.reduceat(days, begins) - first + 1 if len(days) else first
    offsets = np.cumsum(spans) - spans
    row_groups = group_rows(kept)
    day_index = offsets[row_groups] + rows.day - first[row_groups]
    terms = _strategy_rows(rows, fee_pct)
    sums = _day_sums(rows, day_index, int(spans.sum()), terms)
    count = len(begins)
    trades, active = group_sums(kept, terms[0]), group_sums(kept, terms[1])
    return [
        StrategyState(
            float(fee_pct),
            int(first[g]),
            sums[:, offsets[g] : offsets[g] + spans[g]],
            int(trades[g]),
            int(active[g]),
        )
        for g in range(count)
    ]


@dataclass(frozen=True)
class Strategy(Statistic[StrategyState]):
    """The strategy statistic at ``fee_pct`` (charged on each entry and exit)."""

    fee_pct: float = 0.0

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> StrategyState:
        """``strategy_state(frame, fee_pct)``: the history is not needed."""
        return strategy_state(frame, self.fee_pct)

    def compute_groups(
        self, frame: pd.DataFrame, history: pd.DataFrame, starts: np.ndarray[Any, Any]
    ) -> list[StrategyState]:
        """``strategy_states(frame, starts, fee_pct)``."""
        return strategy_states(frame, starts, self.fee_pct)
