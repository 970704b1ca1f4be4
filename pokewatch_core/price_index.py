"""As-of lookups in a price history: the building block of look-ahead-free models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.data import DATE, ID, PRICE, day_numbers

_DAY_OFFSET = 1 << 31  # keeps day numbers (which may be negative) non-negative in the key


def _keys(codes: np.ndarray[Any, Any], days: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    keys: np.ndarray[Any, Any] = (codes.astype(np.int64) << 32) | (days + _DAY_OFFSET)
    return keys


@dataclass(frozen=True)
class PriceIndex:
    """Observed prices sorted by ``(card_id, date)``, with as-of lookups.

    ``prices[i]`` is the i-th observed price in that order; ``locate(at)`` tells, for each row
    of ``at``, where that card's prices strictly before the row's date end and how many there
    are, so ``prices[pos - count : pos]`` are exactly the usable prices, oldest first.
    """

    cards: pd.Index[Any]
    keys: np.ndarray[Any, np.dtype[np.int64]]
    days: np.ndarray[Any, np.dtype[np.int64]]
    prices: np.ndarray[Any, np.dtype[np.float64]]
    codes: np.ndarray[Any, np.dtype[np.int64]]

    @classmethod
    def build(cls, history: pd.DataFrame) -> PriceIndex:
        """Index the rows of ``history`` (``card_id, date, market_price``) that have a price."""
        prices = history[PRICE].to_numpy(dtype=np.float64)
        observed = ~np.isnan(prices)
        if not observed.all():
            history = history.loc[observed]
            prices = prices[observed]
        codes, uniques = pd.factorize(history[ID], sort=True)
        days = day_numbers(history[DATE])
        keys = _keys(codes, days)
        if len(keys) > 1 and not (keys[1:] >= keys[:-1]).all():
            order = np.argsort(keys, kind="stable")
            keys, days, prices, codes = keys[order], days[order], prices[order], codes[order]
        return cls(pd.Index(uniques), keys, days, prices, codes.astype(np.int64))

    def card_codes(self, card_ids: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Position of each card id among ``cards`` (-1 for cards with no price)."""
        return self.cards.get_indexer(pd.Index(card_ids)).astype(np.int64)

    def locate(
        self, at: pd.DataFrame
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]:
        """For each row of ``at`` (``card_id, date``): ``(pos, count)``, where ``count`` is the
        number of the card's observed prices dated strictly before the row's date and
        ``prices[pos - count : pos]`` are those prices. Unknown cards get ``count == 0``."""
        codes = self.card_codes(at[ID])
        known = codes >= 0
        safe = np.where(known, codes, 0)
        pos = np.searchsorted(self.keys, _keys(safe, day_numbers(at[DATE])), side="left")
        start = np.searchsorted(self.keys, safe << 32, side="left")
        count = np.where(known, pos - start, 0)
        return pos.astype(np.int64), count.astype(np.int64)

    def lag(
        self, pos: np.ndarray[Any, Any], count: np.ndarray[Any, Any], k: int = 1
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The ``k``-th last observed price before each located row (NaN if fewer)."""
        values = self.prices[np.maximum(pos - k, 0)] if len(self.prices) else np.zeros(len(pos))
        lagged: np.ndarray[Any, np.dtype[np.float64]] = np.where(count >= k, values, np.nan)
        return lagged

    def window_mean(
        self,
        pos: np.ndarray[Any, Any],
        count: np.ndarray[Any, Any],
        window: int,
        min_periods: int = 1,
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Mean of the last ``window`` observed prices before each located row; NaN where
        fewer than ``min_periods`` exist. Sums shifted arrays: exact, O(rows x window)."""
        used = np.minimum(count, window)
        total = np.zeros(len(pos))
        for k in range(1, window + 1):
            total += np.where(used >= k, self.lag(pos, count, k), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean: np.ndarray[Any, np.dtype[np.float64]] = total / used
        mean[used < max(min_periods, 1)] = np.nan
        return mean
