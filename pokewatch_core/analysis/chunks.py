"""The signalled rows of an evaluation frame, visited in card-aligned chunks sorted by card and
date (``pokewatch_core.data.price_index.card_aligned_chunks``, ``CHUNK_ROWS`` rows at a time),
so that no analysis holds more than a chunk; signal codes and forward returns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of
from pokewatch_core.components import SIGNALS
from pokewatch_core.data import price_index
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
from pokewatch_core.statistics import group_rows, group_sums

BUY, SELL, HOLD = 0, 1, 2


def ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is 0."""
    return a / b if b else float("nan")


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
        nanos = self.dates.astype("datetime64[ns]", copy=False).view(np.int64)
        low, high = day_numbers(np.array([nanos.min(), nanos.max()]).astype("datetime64[ns]"))
        return int(low), int(high)

    def chunks(self, size: int | None = None) -> Iterator[SignalRows]:
        """The signalled rows in card-aligned chunks of about ``size`` (default
        ``CHUNK_ROWS``) frame rows."""
        size = size or price_index.CHUNK_ROWS
        card = self.card if self.order is None else self.card[self.order]
        for start, stop in pairwise(price_index.card_aligned_chunks(card, size)):
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


def signal_codes(column: pd.Series[Any]) -> np.ndarray[Any, Any]:
    """Signals as codes 0 BUY, 1 SELL, 2 HOLD, -1 missing."""
    if isinstance(column.dtype, pd.CategoricalDtype) and tuple(column.cat.categories) == SIGNALS:
        return category_codes(column)
    values = pd.Categorical(column, categories=list(SIGNALS))
    return np.asarray(values.codes)


def _signal_arrays(frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], ...]:
    """``frame``'s card codes, dates, market prices and signal codes, and which rows are
    signalled (a market price, a prediction and a signal)."""
    market = frame[PRICE].to_numpy(dtype=np.float64)
    codes = signal_codes(frame[SIGNAL])
    keep = ~np.isnan(market)
    keep &= ~np.isnan(frame[PREDICTED].to_numpy(dtype=np.float64))
    keep &= codes >= 0
    dates = frame[DATE].to_numpy()
    if dates.dtype.kind != "M":  # a frame that did not come from evaluate()
        dates = np.asarray(frame[DATE], dtype="datetime64[ns]")
    return codes_of(frame[ID])[0], dates, market, codes, keep


def signal_frame(frame: pd.DataFrame) -> SignalFrame:
    """The signalled rows of ``frame`` (see ``SignalFrame``)."""
    card, dates, market, codes, keep = _signal_arrays(frame)
    order = None
    if not strictly_sorted(card, dates):
        order = np.argsort(sort_keys(card, day_numbers(dates)), kind="stable")
    return SignalFrame(card, dates, market, codes, keep, order)


def grouped_signal_rows(
    frame: pd.DataFrame, starts: np.ndarray[Any, Any]
) -> tuple[SignalRows, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The signalled rows of ``frame``'s groups (``Statistic.compute_groups``), sorted by
    group, card and date, each ``card`` a code of (group, card) so that no run of a card
    crosses a group; the groups they form (``starts``, some maybe empty), and the day number
    of every row of ``frame`` (signalled or not)."""
    card, dates, market, codes, keep = _signal_arrays(frame)
    card = card.astype(np.int64)
    groups = group_rows(starts)
    days = day_numbers(dates)
    composite = groups * (int(card.max(initial=0)) + 1) + card
    if not strictly_sorted(composite, dates):
        order = np.lexsort((days, composite))
        take = order[keep[order]]
    else:
        take = np.flatnonzero(keep)
    rows = SignalRows(composite[take], days[take], market[take], codes[take])
    kept = np.concatenate([[0], np.cumsum(group_sums(starts, keep))]).astype(np.int64)
    return rows, kept, days


def forward_returns(rows: SignalRows, horizon: int = 1) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``price[i + horizon] / price[i] - 1`` within the card; NaN where there is none."""
    n = len(rows.price)
    out = np.full(n, np.nan)
    if horizon < 1 or n <= horizon:
        return out
    same = rows.card[horizon:] == rows.card[:-horizon]
    out[:-horizon] = np.where(same, rows.price[horizon:] / rows.price[:-horizon] - 1.0, np.nan)
    return out
