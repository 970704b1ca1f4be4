"""As-of lookups in a price history: the building block of look-ahead-free models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.data import DATE, ID, PRICE, category_codes, day_numbers

_DAY_OFFSET = 1 << 31  # keeps day numbers (which may be negative) non-negative in the key
IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def _keys(codes: np.ndarray[Any, Any], days: np.ndarray[Any, Any]) -> IntArray:
    keys: IntArray = (codes.astype(np.int64) << 32) | (days + _DAY_OFFSET)
    return keys


def _buffers(frame: pd.DataFrame) -> tuple[int, int, int]:
    """Addresses of the id and date data and the row count: equal for frames that share
    their rows (``history[["card_id", "date"]]`` is such a view)."""
    ids, dates = frame[ID], frame[DATE]
    if not isinstance(ids.dtype, pd.CategoricalDtype) or not isinstance(dates.dtype, np.dtype):
        return (0, 0, -1)
    codes = category_codes(ids)  # a view, unlike .cat.codes
    return (codes.ctypes.data, dates.to_numpy().ctypes.data, len(frame))


def _codes(ids: pd.Series[Any]) -> tuple[np.ndarray[Any, Any], pd.Index[Any]]:
    if isinstance(ids.dtype, pd.CategoricalDtype):
        return category_codes(ids), ids.cat.categories
    codes, uniques = pd.factorize(ids)
    return codes, pd.Index(uniques)


@dataclass(frozen=True)
class PriceIndex:
    """Observed prices sorted by ``(card_id, date)``, with as-of lookups.

    ``prices[i]`` is the i-th observed price in that order; ``locate(at)`` tells, for each row
    of ``at``, where that card's prices strictly before the row's date end and how many there
    are, so ``prices[pos - count : pos]`` are exactly the usable prices, oldest first.
    """

    cards: pd.Index[Any]
    keys: IntArray
    prices: FloatArray
    # Every history row's key in the history's order, for the common case where `at` is the
    # history itself (a walk-forward evaluation): located by prefix counts, no search.
    _row_keys: IntArray = field(repr=False, default_factory=lambda: np.empty(0, np.int64))
    _row_observed: np.ndarray[Any, np.dtype[np.bool_]] = field(
        repr=False, default_factory=lambda: np.empty(0, bool)
    )
    _row_buffers: tuple[int, int, int] = (0, 0, -1)

    @classmethod
    def build(cls, history: pd.DataFrame) -> PriceIndex:
        """Index the rows of ``history`` (``card_id, date, market_price``) that have a price.

        Sorting is skipped when the history is already sorted by card and date.
        """
        codes, cards = _codes(history[ID])
        prices = history[PRICE].to_numpy(dtype=np.float64)
        row_keys = _keys(codes, day_numbers(history[DATE]))
        observed = ~np.isnan(prices)
        keys, obs_prices = row_keys, prices
        if not observed.all():
            keys, obs_prices = row_keys[observed], prices[observed]
        if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
            order = np.argsort(keys, kind="stable")
            keys, obs_prices = keys[order], obs_prices[order]
        return cls(cards, keys, obs_prices, row_keys, observed, _buffers(history))

    @property
    def codes(self) -> IntArray:
        """Card code (position in ``cards``) of each observed price."""
        codes: IntArray = self.keys >> 32
        return codes

    @property
    def days(self) -> IntArray:
        """Day number (days since 1970-01-01) of each observed price."""
        days: IntArray = (self.keys & 0xFFFFFFFF) - _DAY_OFFSET
        return days

    def card_codes(self, card_ids: Any) -> IntArray:
        """Position of each card id among ``cards`` (-1 for cards with no price)."""
        ids = card_ids if isinstance(card_ids, pd.Series) else pd.Series(card_ids)
        if isinstance(ids.dtype, pd.CategoricalDtype):
            own = category_codes(ids)
            categories = ids.cat.categories
            if categories is self.cards or categories.equals(self.cards):
                same: IntArray = own.astype(np.int64)
                return same
            mapping = np.append(self.cards.get_indexer(categories), -1)  # code -1 stays -1
            mapped: IntArray = mapping[own].astype(np.int64)
            return mapped
        return self.cards.get_indexer(pd.Index(ids)).astype(np.int64)

    def locate(self, at: pd.DataFrame) -> tuple[IntArray, IntArray]:
        """For each row of ``at`` (``card_id, date``): ``(pos, count)``, where ``count`` is the
        number of the card's observed prices dated strictly before the row's date and
        ``prices[pos - count : pos]`` are those prices. Unknown cards get ``count == 0``."""
        if _buffers(at) == self._row_buffers:  # `at` is the history's own rows: no search
            return self._locate_rows()
        codes = self.card_codes(at[ID])
        known = codes >= 0
        safe = np.where(known, codes, 0)
        at_keys = _keys(safe, day_numbers(at[DATE]))
        if known.all() and np.array_equal(at_keys, self._row_keys):
            return self._locate_rows()
        pos = np.searchsorted(self.keys, at_keys, side="left")
        start = np.searchsorted(self.keys, safe << 32, side="left")
        count = np.where(known, pos - start, 0)
        return pos.astype(np.int64), count.astype(np.int64)

    def _locate_rows(self) -> tuple[IntArray, IntArray]:
        """``locate`` for the history's own rows: the observed rows before each row, counted
        in key order (history keys are unique, so "before" means strictly earlier)."""
        keys, observed = self._row_keys, self._row_observed
        order = None
        if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
            order = np.argsort(keys, kind="stable")
            keys, observed = keys[order], observed[order]
        pos = np.cumsum(observed, dtype=np.int64)
        pos -= observed  # observed rows strictly before each row
        card = keys >> 32
        first = np.empty(len(keys), dtype=bool)
        first[:1] = True
        np.not_equal(card[1:], card[:-1], out=first[1:])
        # pos never decreases, so the running maximum of "pos at a card's first row" is the
        # start of the current card
        start = np.where(first, pos, 0)
        np.maximum.accumulate(start, out=start)
        count = np.subtract(pos, start, out=start)
        if order is not None:
            unsorted_pos, unsorted_count = np.empty_like(pos), np.empty_like(count)
            unsorted_pos[order], unsorted_count[order] = pos, count
            return unsorted_pos, unsorted_count
        return pos, count

    def lag(self, pos: IntArray, count: IntArray, k: int = 1) -> FloatArray:
        """The ``k``-th last observed price before each located row (NaN if fewer)."""
        if not len(self.prices):
            return np.full(len(pos), np.nan)
        lagged: FloatArray = np.where(count >= k, self.prices[np.maximum(pos - k, 0)], np.nan)
        return lagged

    def window_mean(
        self, pos: IntArray, count: IntArray, window: int, min_periods: int = 1
    ) -> FloatArray:
        """Mean of the last ``window`` observed prices before each located row; NaN where
        fewer than ``min_periods`` exist. Sums shifted arrays: exact, O(rows x window)."""
        used = np.minimum(count, window)
        total = np.zeros(len(pos))
        if len(self.prices):
            index = np.empty_like(pos)
            lagged = np.empty(len(pos))
            for k in range(1, window + 1):
                np.subtract(pos, k, out=index)
                self.prices.take(index, mode="clip", out=lagged)  # observed prices: finite
                lagged *= used >= k
                total += lagged
        with np.errstate(invalid="ignore", divide="ignore"):
            mean: FloatArray = np.divide(total, used, out=total)
        mean[used < max(min_periods, 1)] = np.nan
        return mean
