"""The naive forecast, the yardstick of the relative metrics (``mae``, ``wape``, ``mase``,
``skill_vs_naive``, ``directional_accuracy``).

The naive forecast of a row is the card's last observed price strictly before the row's date.
The MASE scale is the mean absolute one-step change of each card's observed prices over the
fitting rows (the rows the model was fitted on), pooled across cards (Hyndman & Koehler,
m = 1).

The sums the five metrics need are one statistic, ``NaiveForecast()``, that they share; it is
computed in card-aligned chunks when the scored rows are the history's own rows (no
``test_start``), so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of
from pokewatch_core.columns import NAIVE
from pokewatch_core.data import price_index
from pokewatch_core.data.price_index import PriceIndex, card_aligned_chunks, observed_before
from pokewatch_core.data.tables import (
    DATE,
    ID,
    PREDICTED,
    PRICE,
    day_numbers,
    sort_keys,
    strictly_sorted,
)
from pokewatch_core.statistics import Statistic, group_sums, same_rows

FITTING = "fitting"  # the optional boolean column of a ``NaiveBaseline``'s history
# A backtest's forecasts frame carries its naive forecast (the ``naive_price`` column) and, in
# ``frame.attrs`` under this key, the MASE scale's sums of the metrics' history, computed once
# for all its horizons and cutoffs
SCALE_SUMS = "naive_scale_sums"

# A difference from the naive price within this percentage of it counts as no move, in
# directional_accuracy: the threshold policy's tie tolerance (1e-9 percentage points)
NO_MOVE_TOLERANCE_PCT = 1e-9


@dataclass(frozen=True)
class NaiveSums:
    """Sums over an evaluation frame's scored rows (market price and prediction).

    Every field is a sum or a count, so the sums of frames holding different cards add up
    (``+``) to the sums of their rows together: the value of ``NaiveForecast()``."""

    scored: int  # scored rows
    abs_error: float  # sum |predicted - market|
    market: float  # sum market
    abs_error_with_naive: float  # sum |predicted - market| over those
    naive_abs_error: float  # sum |naive - market| over those
    moved: int  # those whose market differs from the naive forecast (NO_MOVE_TOLERANCE_PCT)
    same_direction: int  # those where sign(predicted - naive) == sign(market - naive)
    change_sum: float = 0.0  # sum of |one-step change| of each card's fitting prices
    changes: int = 0  # number of those one-step changes

    @property
    def scale(self) -> float:
        """The MASE scale: mean absolute one-step change (NaN without one-step changes)."""
        return self.change_sum / self.changes if self.changes else float("nan")

    def __add__(self, other: NaiveSums) -> NaiveSums:
        """The sums of both frames' rows (frames of different cards)."""
        return NaiveSums(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


def _row_terms(
    market: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any], naive: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], ...]:
    """Per row: scored, |error| (NaN where unscored), has a naive forecast too, |naive error|,
    moved, same direction: the terms of ``NaiveSums``' sums."""
    error = predicted - market
    scored = ~np.isnan(error)
    has_naive = scored & ~np.isnan(naive)
    naive_error = market - naive  # signed: the actual move
    # a move within NO_MOVE_TOLERANCE_PCT of the naive price is no move (float noise:
    # a mean of 0.5, 0.9, 0.7 is not exactly 0.7)
    tolerance = np.abs(naive) * (NO_MOVE_TOLERANCE_PCT / 100.0)
    moved = has_naive & (np.abs(naive_error) > tolerance)
    predicted_move = predicted - naive
    predicted_move[np.abs(predicted_move) <= tolerance] = 0.0
    same = moved & (np.sign(predicted_move) == np.sign(naive_error))
    np.abs(error, out=error)
    np.abs(naive_error, out=naive_error)
    return scored, error, has_naive, naive_error, moved, same


@dataclass
class _Totals:
    values: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(7))

    def add(
        self,
        market: np.ndarray[Any, Any],
        predicted: np.ndarray[Any, Any],
        naive: np.ndarray[Any, Any],
    ) -> None:
        # masked sums (``where=``) rather than boolean indexing: no copies of the columns
        scored, error, has_naive, naive_error, moved, same = _row_terms(market, predicted, naive)
        self.values += [
            np.count_nonzero(scored),
            np.sum(error, where=scored),
            np.sum(market, where=scored),
            np.sum(error, where=has_naive),
            np.sum(naive_error, where=has_naive),
            np.count_nonzero(moved),
            np.count_nonzero(same),
        ]

    def sums(self, change_sum: float, changes: int) -> NaiveSums:
        v = self.values
        return NaiveSums(
            int(v[0]), v[1], v[2], v[3], v[4], int(v[5]), int(v[6]), change_sum, changes
        )


class NaiveBaseline:
    """The naive forecast and the MASE scale of one price history."""

    def __init__(self, history: pd.DataFrame) -> None:
        self.history = history

    @classmethod
    def of(cls, history: pd.DataFrame) -> NaiveBaseline:
        """The baseline of ``history`` (``card_id, date, market_price`` and an optional boolean
        ``fitting``; without it every row is a fitting row). Cheap: the index and the scale
        are built on first use."""
        return cls(history)

    @cached_property
    def _fitting(self) -> np.ndarray[Any, Any] | None:
        if FITTING not in self.history.columns:
            return None
        mask = self.history[FITTING].to_numpy(dtype=bool)
        return None if mask.all() else mask

    @cached_property
    def index(self) -> PriceIndex:
        """The history's observed prices, for as-of lookups."""
        return PriceIndex.build(self.history[[ID, DATE, PRICE]])

    @cached_property
    def scale_sums(self) -> tuple[float, int]:
        """Sum and count of the absolute one-step changes of each card's observed prices
        over the fitting rows (the MASE scale is their ratio, pooled across cards)."""
        rows = self.history[[ID, DATE, PRICE]]
        mask = self._fitting
        return scale_sums(self.index if mask is None else PriceIndex.build(rows.loc[mask]))

    @property
    def scale(self) -> float:
        """Mean absolute one-step change of each card's observed prices over the fitting
        rows, pooled across cards (NaN without one-step changes)."""
        total, count = self.scale_sums
        return total / count if count else float("nan")

    def last_price(self, frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The naive forecast of each row of ``frame`` (``card_id, date``): the card's last
        observed price strictly before the date (NaN where there is none)."""
        pos, count = self.index.locate(frame[[ID, DATE]])
        return self.index.lag(pos, count, 1)

    def sums(self, frame: pd.DataFrame) -> NaiveSums:
        """The sums of the relative metrics over ``frame`` (an evaluation frame)."""
        market = frame[PRICE].to_numpy(dtype=np.float64)
        predicted = frame[PREDICTED].to_numpy(dtype=np.float64)
        totals = _Totals()
        if self._fitting is not None or not self.index.covers(frame):
            totals.add(market, predicted, self.last_price(frame))
            return totals.sums(*self.scale_sums)
        # the frame is the history itself: walk it sorted, a chunk of whole cards at a time
        card = codes_of(frame[ID])[0]
        dates = frame[DATE].to_numpy()
        order = None
        if not strictly_sorted(card, dates):
            order = np.argsort(sort_keys(card, day_numbers(dates)), kind="stable")
            card = card[order]
        change_sum, changes = 0.0, 0
        for a, b in pairwise(card_aligned_chunks(card, price_index.CHUNK_ROWS)):
            rows = slice(a, b) if order is None else order[a:b]
            block_card, block_market = card[a:b], market[rows]
            observed = ~np.isnan(block_market)
            pos, count = observed_before(block_card, observed)
            seen = block_market[observed]
            naive = (
                np.where(count > 0, seen.take(pos - 1, mode="clip"), np.nan)
                if len(seen)
                else (np.full(b - a, np.nan))
            )
            totals.add(block_market, predicted[rows], naive)
            seen_card = block_card[observed]
            same = seen_card[1:] == seen_card[:-1]
            change_sum += float(np.abs(np.diff(seen))[same].sum())
            changes += int(np.count_nonzero(same))
        return totals.sums(change_sum, changes)


def scale_sums(index: PriceIndex, until: pd.Timestamp | None = None) -> tuple[float, int]:
    """Sum and count of the absolute one-step changes of each card's observed prices in
    ``index`` (those dated on or before ``until``, if given): the MASE scale's sums."""
    codes = index.codes
    same = codes[1:] == codes[:-1]
    if until is not None:
        # a card's prices up to a date are a prefix of its prices: a change is kept when
        # its later price is
        same &= index.days[1:] <= day_numbers(np.array([until.to_datetime64()]))[0]
    changes = np.abs(np.diff(index.prices))[same]
    return float(changes.sum()), len(changes)


@dataclass(frozen=True)
class NaiveForecast(Statistic[NaiveSums]):
    """The naive forecast's sums over the scored rows (``NaiveSums``), read by the five
    relative metrics: the naive forecast of a scored row is its card's last observed price
    before it in the history and the scored rows together, the MASE scale comes from the
    history (the rows the model was fitted on)."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> NaiveSums:
        """The sums of ``frame`` against ``history`` and ``frame``'s own earlier rows; a
        backtest's frame carries its naive forecast (``naive_price``: the last observed price
        on or before the forecast's cutoff) and the scale's sums of ``history``
        (``frame.attrs[SCALE_SUMS]``, else computed here)."""
        if NAIVE in frame.columns:
            totals = _Totals()
            market = frame[PRICE].to_numpy(dtype=np.float64)
            predicted = frame[PREDICTED].to_numpy(dtype=np.float64)
            naive = frame[NAIVE].to_numpy(dtype=np.float64)
            # a chunk at a time: the temporaries stay small and are reused
            for a in range(0, len(frame), price_index.CHUNK_ROWS):
                b = a + price_index.CHUNK_ROWS
                totals.add(market[a:b], predicted[a:b], naive[a:b])
            scale = frame.attrs.get(SCALE_SUMS)
            if scale is None:
                scale = NaiveBaseline.of(history).scale_sums
            return totals.sums(*scale)
        if same_rows(frame, history):
            return NaiveBaseline.of(history).sums(frame)
        rows = pd.concat([history[[ID, DATE, PRICE]], frame[[ID, DATE, PRICE]]], ignore_index=True)
        fitting = np.zeros(len(rows), dtype=bool)
        fitting[: len(history)] = True
        return NaiveBaseline.of(rows.assign(**{FITTING: fitting})).sums(frame)

    def compute_groups(
        self, frame: pd.DataFrame, history: pd.DataFrame, starts: np.ndarray[Any, Any]
    ) -> list[NaiveSums]:
        """Every group's sums in one pass, for a backtest's frame (``naive_price``)."""
        if NAIVE not in frame.columns:
            return super().compute_groups(frame, history, starts)
        market = frame[PRICE].to_numpy(dtype=np.float64)
        scored, error, has_naive, naive_error, moved, same = _row_terms(
            market,
            frame[PREDICTED].to_numpy(dtype=np.float64),
            frame[NAIVE].to_numpy(dtype=np.float64),
        )
        columns = [
            group_sums(starts, scored),
            group_sums(starts, np.where(scored, error, 0.0)),
            group_sums(starts, np.where(scored, market, 0.0)),
            group_sums(starts, np.where(has_naive, error, 0.0)),
            group_sums(starts, np.where(has_naive, naive_error, 0.0)),
            group_sums(starts, moved),
            group_sums(starts, same),
        ]
        scale = frame.attrs.get(SCALE_SUMS)
        if scale is None:
            scale = NaiveBaseline.of(history).scale_sums
        out = []
        for v in np.stack(columns, axis=1):
            out.append(NaiveSums(int(v[0]), v[1], v[2], v[3], v[4], int(v[5]), int(v[6]), *scale))
        return out

    def merge(self, a: NaiveSums, b: NaiveSums) -> NaiveSums:
        """The sums of both frames' rows."""
        return a + b
