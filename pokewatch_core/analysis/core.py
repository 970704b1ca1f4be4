"""The analyses of an evaluation frame: signal quality, a simple long-only strategy, and the
per-card table. The signal and strategy metrics are fields of these analyses, and the summary,
plots and tables read the same analyses off the ``EvaluationResult``.

Each analysis is an exactly mergeable state (counts, sums, per-day arrays) computed over a frame
of whole cards, in card-aligned chunks so memory stays bounded; the states of frames holding
different cards merge into the state of their union, and ``finalize`` turns a state into the
figures.

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
  is inferred from the median spacing of the return series' dates (daily 365, weekly 52,
  monthly 12, …) unless given; ``strategy_max_drawdown`` = largest fall of the equity curve
  from its running peak, as a positive fraction; ``turnover`` = entries and exits per
  position-day (active card-rows).
* **Buy and hold** (for the plot): each day, the mean of ``price / previous price`` over the
  cards observed that day after an earlier observation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of
from pokewatch_core.components import SIGNALS
from pokewatch_core.data.tables import (
    DATE,
    ID,
    PREDICTED,
    PRICE,
    SIGNAL,
    category_codes,
    day_numbers,
    sort_keys,
    strictly_sorted,
)

BUY, SELL, HOLD = 0, 1, 2


CHUNK_ROWS = 1 << 20  # rows per pass: memory stays bounded on panels of any size


@dataclass(frozen=True)
class SignalRows:
    """Signalled rows sorted by card and date: a whole frame's, or one card-aligned chunk."""

    card: np.ndarray[Any, Any]
    day: np.ndarray[Any, Any]
    price: np.ndarray[Any, np.dtype[np.float64]]
    signal: np.ndarray[Any, Any]  # 0 BUY, 1 SELL, 2 HOLD


@dataclass
class SignalFrame:
    """The signalled rows of a frame (market price, prediction and signal), visited in
    card-aligned chunks sorted by card and date, so that no analysis holds more than a chunk."""

    card: np.ndarray[Any, Any]  # in sorted order when ``order`` is None, else frame order
    dates: np.ndarray[Any, Any]
    price: np.ndarray[Any, np.dtype[np.float64]]
    signal: np.ndarray[Any, Any]
    keep: np.ndarray[Any, Any]
    order: np.ndarray[Any, Any] | None  # argsort by (card, date) when the frame is not sorted

    def day_range(self) -> tuple[int, int]:
        """First and last day number of the frame's dates (signalled or not)."""
        if not len(self.dates):
            return 0, -1
        low, high = day_numbers(self.dates[[self.dates.argmin(), self.dates.argmax()]])
        return int(low), int(high)

    def chunks(self, size: int | None = None) -> Iterator[SignalRows]:
        """The signalled rows in card-aligned chunks of about ``size`` (default
        ``CHUNK_ROWS``) frame rows."""
        size = size or CHUNK_ROWS
        n = len(self.card)
        start = 0
        while start < n:
            stop = min(start + size, n)
            if stop < n:  # move the end to the next card boundary
                sorted_card = self.card if self.order is None else None
                if sorted_card is not None:
                    last = sorted_card[stop - 1]
                    stop = int(np.searchsorted(sorted_card, last, side="right"))
                else:
                    assert self.order is not None
                    last = self.card[self.order[stop - 1]]
                    while stop < n and self.card[self.order[stop]] == last:
                        stop += 1
            if self.order is None:
                take = np.flatnonzero(self.keep[start:stop]) + start
            else:
                rows = self.order[start:stop]
                take = rows[self.keep[rows]]
            yield SignalRows(
                self.card[take],
                day_numbers(self.dates[take]),
                self.price[take],
                self.signal[take],
            )
            start = stop


def signal_codes(column: pd.Series[Any]) -> np.ndarray[Any, Any]:
    """Signals as codes 0 BUY, 1 SELL, 2 HOLD, -1 missing."""
    if isinstance(column.dtype, pd.CategoricalDtype) and tuple(column.cat.categories) == SIGNALS:
        return category_codes(column)
    values = pd.Categorical(column, categories=list(SIGNALS))
    return np.asarray(values.codes)


def signal_frame(frame: pd.DataFrame) -> SignalFrame:
    """The signalled rows of ``frame`` (see ``SignalFrame``)."""
    market = frame[PRICE].to_numpy(dtype=np.float64)
    predicted = frame[PREDICTED].to_numpy(dtype=np.float64)
    codes = signal_codes(frame[SIGNAL])
    keep = ~np.isnan(market)
    keep &= ~np.isnan(predicted)
    keep &= codes >= 0
    card = codes_of(frame[ID])[0]
    dates = frame[DATE].to_numpy()
    if dates.dtype.kind != "M":  # a frame that did not come from evaluate()
        dates = np.asarray(frame[DATE], dtype="datetime64[ns]")
    order = None
    if not strictly_sorted(card, dates):
        order = np.argsort(sort_keys(card, day_numbers(dates)), kind="stable")
    return SignalFrame(card, dates, market, codes, keep, order)


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


@dataclass(frozen=True)
class QualityState:
    """Counts and forward-return sums behind ``SignalQuality``: exact to merge."""

    horizon: int
    # rows with a forward price, rises, falls, BUY rows, SELL rows, BUY & rise, SELL & fall
    counts: np.ndarray[Any, np.dtype[np.int64]]
    buy_return_sum: float
    sell_return_sum: float

    @staticmethod
    def key(horizon: int) -> Hashable:
        """The state key at ``horizon``: the metrics that read one share its state."""
        return ("signal_quality", horizon)

    def merge(self, other: QualityState) -> QualityState:
        """The state of both frames' rows (frames of different cards)."""
        return QualityState(
            self.horizon,
            self.counts + other.counts,
            self.buy_return_sum + other.buy_return_sum,
            self.sell_return_sum + other.sell_return_sum,
        )

    def finalize(self) -> SignalQuality:
        """The signal-quality figures of the module docstring."""
        n, rises, falls, buys, sells, buy_rise, sell_fall = (int(v) for v in self.counts)
        buy_p, sell_p = _ratio(buy_rise, buys), _ratio(sell_fall, sells)
        return SignalQuality(
            buy_precision=buy_p,
            sell_precision=sell_p,
            buy_recall=_ratio(buy_rise, rises),
            sell_recall=_ratio(sell_fall, falls),
            buy_lift=_ratio(buy_p, _ratio(rises, n)),
            sell_lift=_ratio(sell_p, _ratio(falls, n)),
            mean_forward_return_buy=_ratio(self.buy_return_sum, buys),
            mean_forward_return_sell=_ratio(self.sell_return_sum, sells),
        )


def quality_state(frame: pd.DataFrame, horizon: int = 1) -> QualityState:
    """The signal-quality state of ``frame`` (whole cards), chunk by chunk."""
    counts = np.zeros(7, dtype=np.int64)
    buy_sum = sell_sum = 0.0
    for chunk in signal_frame(frame).chunks():
        ret = forward_returns(chunk, horizon)
        has = ~np.isnan(ret)
        ret, sig = ret[has], chunk.signal[has]
        rise, fall = ret > 0, ret < 0
        buy, sell = sig == BUY, sig == SELL
        counts += [len(ret), *map(_count, (rise, fall, buy, sell, buy & rise, sell & fall))]
        buy_sum += float(ret[buy].sum())
        sell_sum += float(ret[sell].sum())
    return QualityState(horizon, counts, buy_sum, sell_sum)


def signal_quality(frame: pd.DataFrame, horizon: int = 1) -> SignalQuality:
    """The signal-quality figures of the module docstring over ``frame``."""
    return quality_state(frame, horizon).finalize()


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
        return _ratio(self.trades, self.position_days)


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

    @staticmethod
    def key(fee_pct: float) -> Hashable:
        """The state key at ``fee_pct``: the metrics that read one share its state."""
        return ("strategy", float(fee_pct))

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
            dates=pd.DatetimeIndex((days * 86_400 * 10**9).astype("datetime64[ns]")),
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


def _strategy_chunk(
    rows: SignalRows, fee_pct: float, day_index: np.ndarray[Any, Any], n_days: int
) -> tuple[np.ndarray[Any, Any], int, int]:
    """Per-day sums of one card-aligned chunk (rows, active rows, their growth, observed
    rows, their price growth), its trades and its active rows."""
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
    observed = ~first

    def per_day(weights: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        return np.bincount(day_index, weights=weights, minlength=n_days)

    counts = np.stack(
        [
            per_day().astype(np.float64),
            per_day(active),
            per_day(np.where(active, growth, 0.0)),
            per_day(observed),
            per_day(np.where(observed, growth_price, 0.0)),
        ]
    )
    return counts, int(np.count_nonzero(traded)), int(np.count_nonzero(active))


BY_CARD: Hashable = ("by_card",)  # the state key of the per-card table


@dataclass(frozen=True)
class CardState:
    """Per-card sums behind ``metrics_by_card``: one row per card with a row in the frame."""

    cards: np.ndarray[Any, Any]  # card ids (str)
    # shape (cards, 6): scored rows, squared error, |pct error|, BUY, SELL, HOLD rows
    sums: np.ndarray[Any, np.dtype[np.float64]]

    def merge(self, other: CardState) -> CardState:
        """Both frames' cards (a card in both adds up)."""
        cards = np.concatenate([self.cards, other.cards])
        sums = np.concatenate([self.sums, other.sums])
        unique, inverse = np.unique(cards, return_inverse=True)
        if len(unique) == len(cards):
            return CardState(cards, sums)
        added = np.zeros((len(unique), sums.shape[1]))
        np.add.at(added, inverse, sums)
        return CardState(unique, added)

    def finalize(self) -> pd.DataFrame:
        """Per card (sorted by id): scored rows, rmse, mape (percent), count of each signal."""
        scored, squared, ape, buy, sell, hold = self.sums.T
        n = np.where(scored > 0, scored, np.nan)
        out = pd.DataFrame(
            {
                ID: self.cards.astype(object),
                "scored_rows": scored.astype(np.int64),
                "rmse": np.sqrt(squared / n),
                "mape": ape / n * 100.0,
                "buy": buy.astype(np.int64),
                "sell": sell.astype(np.int64),
                "hold": hold.astype(np.int64),
            }
        )
        return out.sort_values(ID, kind="stable", ignore_index=True)


def card_state(frame: pd.DataFrame) -> CardState:
    """The per-card sums of ``frame``."""
    codes, cards = codes_of(frame[ID])
    present = codes >= 0
    card = codes[present]
    n_cards = len(cards)
    market = frame[PRICE].to_numpy(dtype=np.float64)[present]
    error = frame[PREDICTED].to_numpy(dtype=np.float64)[present] - market
    scored = ~np.isnan(error)
    error = np.where(scored, error, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ape = np.where(scored, np.abs(error) / market, 0.0)
    signal = signal_codes(frame[SIGNAL])[present]

    def per_card(weights: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        return np.bincount(card, weights=weights, minlength=n_cards)

    sums = np.stack(
        [
            per_card(scored.astype(np.float64)),
            per_card(error * error),
            per_card(ape),
            *(per_card((signal == code).astype(np.float64)) for code in (BUY, SELL, HOLD)),
        ],
        axis=1,
    )
    used = per_card() > 0
    return CardState(np.asarray(cards, dtype=object)[used], sums[used])


def metrics_by_card(frame: pd.DataFrame) -> pd.DataFrame:
    """Per card (sorted by id): scored rows, rmse, mape (percent) and the count of each
    signal."""
    return card_state(frame).finalize()


OVERVIEW: Hashable = ("overview",)  # the state key of the data overview


@dataclass(frozen=True)
class OverviewState:
    """Counts that tell what was evaluated: rows, cards and date range of the whole frame;
    rows with no price, scored rows, priced rows with no prediction of the scored period."""

    rows: int
    cards: int
    priced: int  # rows of the whole frame with a market price
    first_day: float  # day numbers (NaN without rows)
    last_day: float
    scored_period_rows: int
    no_price: int
    scored: int
    no_prediction: int

    def merge(self, other: OverviewState) -> OverviewState:
        """Both frames' counts (frames of different cards)."""
        return OverviewState(
            self.rows + other.rows,
            self.cards + other.cards,
            self.priced + other.priced,
            float(np.fmin(self.first_day, other.first_day)),
            float(np.fmax(self.last_day, other.last_day)),
            self.scored_period_rows + other.scored_period_rows,
            self.no_price + other.no_price,
            self.scored + other.scored,
            self.no_prediction + other.no_prediction,
        )

    def date_range(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last date of the frame (None without rows)."""
        if np.isnan(self.first_day):
            return None
        first, last = (
            pd.Timestamp(int(d) * 86_400 * 10**9) for d in (self.first_day, self.last_day)
        )
        return first, last


def overview_state(frame: pd.DataFrame, scored: np.ndarray[Any, Any] | None) -> OverviewState:
    """The overview of ``frame``; ``scored`` marks the scored period's rows (None: all)."""
    codes = codes_of(frame[ID])[0]
    days = day_numbers(frame[DATE].to_numpy()) if len(frame) else np.zeros(0, dtype=np.int64)
    price = frame[PRICE].to_numpy(dtype=np.float64)
    priced = int(np.count_nonzero(~np.isnan(price)))
    predicted = frame[PREDICTED].to_numpy(dtype=np.float64)
    if scored is not None:
        price, predicted = price[scored], predicted[scored]
    has_price, has_prediction = ~np.isnan(price), ~np.isnan(predicted)
    return OverviewState(
        rows=len(frame),
        cards=len(np.unique(codes[codes >= 0])),
        priced=priced,
        first_day=float(days.min()) if len(days) else float("nan"),
        last_day=float(days.max()) if len(days) else float("nan"),
        scored_period_rows=len(price),
        no_price=int(np.count_nonzero(~has_price)),
        scored=int(np.count_nonzero(has_price & has_prediction)),
        no_prediction=int(np.count_nonzero(has_price & ~has_prediction)),
    )


ROWS_HASH: Hashable = ("rows_hash",)  # the state key of the input's content digest


@dataclass(frozen=True)
class RowsHash:
    """An order-free digest of a table's ``card_id, date, market_price`` rows: the sum,
    modulo 2**64, of one 64-bit hash per row. Exact to merge (sums of different rows add up),
    whatever the partitioning; any changed, added or removed row changes it (but for a
    2**-64 chance)."""

    value: int

    def merge(self, other: RowsHash) -> RowsHash:
        """The digest of both tables' rows."""
        return RowsHash((self.value + other.value) % 2**64)

    def hexdigest(self) -> str:
        """The digest as 16 hex digits."""
        return f"{self.value:016x}"


def rows_hash(table: pd.DataFrame) -> RowsHash:
    """The ``RowsHash`` of a validated table (ids as text, dates as days, prices as floats)."""
    if not len(table):
        return RowsHash(0)
    rows = pd.DataFrame(
        {
            ID: np.asarray(table[ID], dtype=object).astype(str),
            DATE: day_numbers(table[DATE].to_numpy()),
            PRICE: table[PRICE].to_numpy(dtype=np.float64),
        }
    )
    hashes = pd.util.hash_pandas_object(rows, index=False).to_numpy(dtype=np.uint64)
    return RowsHash(int(hashes.sum(dtype=np.uint64)))  # wraps modulo 2**64


SAMPLE: Hashable = ("price_sample",)  # the state key of the bounded sample of price pairs
SAMPLE_ROWS = 20_000  # more points add nothing visible to a histogram or a scatter plot


@dataclass(frozen=True)
class PriceSample:
    """A uniform sample of at most ``SAMPLE_ROWS`` scored rows' (market, predicted) prices,
    out of ``rows``: what the plots of an evaluation whose frame is not in memory draw.
    Merging keeps each side in proportion to the rows it stands for."""

    rows: int
    market: np.ndarray[Any, np.dtype[np.float64]]
    predicted: np.ndarray[Any, np.dtype[np.float64]]

    def merge(self, other: PriceSample) -> PriceSample:
        """A sample of both frames' scored rows."""
        market = np.concatenate([self.market, other.market])
        predicted = np.concatenate([self.predicted, other.predicted])
        rows = self.rows + other.rows
        if len(market) <= SAMPLE_ROWS:
            return PriceSample(rows, market, predicted)
        # each kept point stands for rows / len(sample) rows of its side
        weight = np.concatenate(
            [
                np.full(len(self.market), self.rows / max(len(self.market), 1)),
                np.full(len(other.market), other.rows / max(len(other.market), 1)),
            ]
        )
        rng = np.random.default_rng(rows)
        pick = np.sort(rng.choice(len(market), SAMPLE_ROWS, replace=False, p=weight / weight.sum()))
        return PriceSample(rows, market[pick], predicted[pick])


def price_sample(frame: pd.DataFrame) -> PriceSample:
    """A uniform sample of ``frame``'s scored rows (a market price and a prediction)."""
    market = frame[PRICE].to_numpy(dtype=np.float64)
    predicted = frame[PREDICTED].to_numpy(dtype=np.float64)
    both = np.flatnonzero(~(np.isnan(market) | np.isnan(predicted)))
    rows = len(both)
    if rows > SAMPLE_ROWS:
        both = np.sort(np.random.default_rng(rows).choice(both, SAMPLE_ROWS, replace=False))
    return PriceSample(rows, market[both], predicted[both])


@dataclass(frozen=True)
class Analyses:
    """The analyses an evaluation's summary, plots and tables show: signal quality at horizon
    1, the strategy (at the fee of the run's strategy metrics, else 0) and the per-card table."""

    overview: OverviewState
    signal_quality: SignalQuality
    backtest: Backtest
    by_card: pd.DataFrame
    reports_signals: bool  # whether the run's metrics include signal or strategy figures

    @property
    def signal_counts(self) -> list[int]:
        """Scored rows with each signal: BUY, SELL, HOLD."""
        return [int(self.by_card[column].sum()) for column in ("buy", "sell", "hold")]


def analysis_states(
    frame: pd.DataFrame,
    rows: pd.DataFrame,
    scored: np.ndarray[Any, Any] | None,
    known: dict[Hashable, Any],
) -> dict[Hashable, Any]:
    """The states of the analyses of ``frame`` (whole cards) whose scored rows are ``rows``
    (marked by ``scored``, None for all), reusing those in ``known`` (the states the run's
    metrics computed over ``rows``): the overview, signal quality at horizon 1, the strategy at
    the fee of a known strategy state (else 0), the per-card table."""
    fees = [s.fee_pct for s in known.values() if isinstance(s, StrategyState)]
    fee = fees[0] if fees else 0.0
    wanted: dict[Hashable, Callable[[], Any]] = {
        OVERVIEW: partial(overview_state, frame, scored),
        QualityState.key(1): partial(quality_state, rows, 1),
        StrategyState.key(fee): partial(strategy_state, rows, fee),
        BY_CARD: partial(card_state, rows),
    }
    return {key: known[key] if key in known else make() for key, make in wanted.items()}


def analyses_from(states: dict[Hashable, Any], metric_keys: set[Hashable]) -> Analyses:
    """The analyses from (merged) ``analysis_states``; ``metric_keys``: the state keys of the
    run's metrics."""
    quality = next(s for s in states.values() if isinstance(s, QualityState) and s.horizon == 1)
    strategy = next(s for s in states.values() if isinstance(s, StrategyState))
    signalled = any(isinstance(states.get(k), QualityState | StrategyState) for k in metric_keys)
    return Analyses(
        states[OVERVIEW],
        quality.finalize(),
        strategy.finalize(),
        states[BY_CARD].finalize(),
        signalled,
    )
