"""As-of lookups in a price history: the building block of look-ahead-free models."""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of
from pokewatch_core.data.tables import (
    DATE,
    DAY_OFFSET,
    ID,
    PRICE,
    day_numbers,
    same_buffers,
    sort_keys,
    strictly_sorted,
)

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
CHUNK_ROWS = 1 << 20  # rows per pass over card-aligned chunks: memory stays bounded
THREADS = max(1, min(8, os.cpu_count() or 1))
# lookups by (card, day) use a table of cards x days when it holds at most this many cells
# per observed price (plus the slack), else a binary search
GRID_CELLS_PER_PRICE, GRID_SLACK = 4, 1 << 20


def card_aligned_chunks(card: np.ndarray[Any, Any], size: int) -> list[int]:
    """Boundaries of row chunks of about ``size`` rows that never split a card."""
    bounds = [0]
    n = len(card)
    while bounds[-1] < n:
        target = bounds[-1] + size
        if target >= n:
            bounds.append(n)
        else:
            bounds.append(int(np.searchsorted(card, card[target], side="right")))
    return bounds


def observed_before(
    card: np.ndarray[Any, Any], observed: np.ndarray[Any, Any]
) -> tuple[IntArray, IntArray]:
    """For rows sorted by card and date: ``pos``, the observed rows before each row (in the
    whole block), and ``count``, those of the row's own card."""
    pos = np.cumsum(observed, dtype=np.int64)
    pos -= observed
    first = np.empty(len(card), dtype=bool)
    first[:1] = True
    np.not_equal(card[1:], card[:-1], out=first[1:])
    # pos never decreases, so the running maximum of "pos at a card's first row" is the start
    # of the current card
    start = np.where(first, pos, 0)
    np.maximum.accumulate(start, out=start)
    return pos, np.subtract(pos, start, out=start)


def _sorted_window_mean(
    card: np.ndarray[Any, Any], prices: FloatArray, window: int, min_periods: int
) -> FloatArray:
    """Walk-forward window mean over rows sorted by card and date (NaN = unobserved), for a
    block that starts at a card boundary. Adds newest first, like ``window_mean``, so both
    paths give the same bits."""
    observed = ~np.isnan(prices)
    obs_prices, obs_card = prices[observed], card[observed]
    sums = obs_prices.copy()  # sums[j]: the card's last `window` observed prices up to j
    for k in range(1, min(window, len(sums))):
        sums[k:] += obs_prices[:-k] * (obs_card[k:] == obs_card[:-k])
    pos, count = observed_before(card, observed)
    used = np.minimum(count, window, out=count)
    pos -= 1
    fair = sums.take(pos, mode="clip") if len(sums) else np.zeros(len(pos))
    with np.errstate(invalid="ignore", divide="ignore"):
        fair /= used
    fair[used < max(min_periods, 1)] = np.nan
    return fair


def _row_arrays(frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], ...] | None:
    """The arrays behind a frame's id codes and dates, or None when they are not plain arrays.

    Frames that share them share their rows (``history[["card_id", "date"]]`` is such a
    view). The index keeps the history's arrays alive, so their memory cannot be reused by
    another frame while the comparison matters.
    """
    dates = frame[DATE]
    if not isinstance(dates.dtype, np.dtype):
        return None
    return (codes_of(frame[ID])[0], dates.to_numpy())


# The runner's own history frames (``share_index``): their id -> (the frame, its index)
_shared: dict[int, tuple[weakref.ref[pd.DataFrame], PriceIndex | None]] = {}
_shared_lock = threading.Lock()


def share_index(history: pd.DataFrame) -> None:
    """Let every ``PriceIndex.build(history)`` of this very frame object return one index,
    built on first use: for the history a backtest hands its model at every horizon and
    scores against, which nothing changes (a model must not change its inputs)."""
    key = id(history)

    def drop(_: object) -> None:
        with _shared_lock:
            _shared.pop(key, None)

    with _shared_lock:
        _shared[key] = (weakref.ref(history, drop), None)


@dataclass(frozen=True)
class PriceIndex:
    """Observed prices sorted by ``(card_id, date)``, with as-of lookups.

    ``prices[i]`` is the i-th observed price in that order; ``locate(at)`` tells, for each row
    of ``at``, where that card's prices strictly before the row's date end and how many there
    are, so ``prices[pos - count : pos]`` are exactly the usable prices, oldest first.
    """

    cards: pd.Index[Any]
    # Every history row (NaN prices included) in the history's order. The sorted observed
    # arrays are derived on first use: the walk-forward case, where `at` is the history
    # itself, never needs them.
    _row_codes: np.ndarray[Any, Any] = field(repr=False)
    _row_dates: np.ndarray[Any, Any] = field(repr=False)  # datetime64, any resolution
    _row_prices: FloatArray = field(repr=False)
    _row_arrays: tuple[np.ndarray[Any, Any], ...] | None = field(repr=False, default=None)
    # window means of every (card, day) cell of the grid, by (window, min_periods): built once
    # for the many as-of lookups of a backtest at every date
    _cell_means: dict[tuple[int, int], FloatArray] = field(
        repr=False, default_factory=dict, compare=False
    )

    @classmethod
    def build(cls, history: pd.DataFrame) -> PriceIndex:
        """Index the rows of ``history`` (``card_id, date, market_price``).

        Cheap: the work happens on first lookup, and sorting is skipped when the history is
        already sorted by card and date. A frame the runner shares (``share_index``) is
        indexed once.
        """
        with _shared_lock:
            entry = _shared.get(id(history))
        if entry is None or entry[0]() is not history:
            return cls._build(history)
        built = entry[1]
        if built is None:
            built = cls._build(history)
            with _shared_lock:
                _shared[id(history)] = (entry[0], built)
        return built

    @classmethod
    def _build(cls, history: pd.DataFrame) -> PriceIndex:
        codes, cards = codes_of(history[ID])
        prices = history[PRICE].to_numpy(dtype=np.float64)
        dates = history[DATE].to_numpy()
        if dates.dtype.kind != "M":  # not yet datetimes (an unvalidated frame)
            dates = np.asarray(history[DATE], dtype="datetime64[ns]")
        arrays = (codes, dates) if isinstance(history[DATE].dtype, np.dtype) else None
        return cls(cards, codes, dates, prices, arrays)

    @cached_property
    def _row_keys(self) -> IntArray:
        return sort_keys(self._row_codes, day_numbers(self._row_dates))

    @cached_property
    def _rows_sorted(self) -> bool:
        return strictly_sorted(self._row_codes, self._row_dates)

    @cached_property
    def _sorted(self) -> tuple[IntArray, FloatArray]:
        observed = ~np.isnan(self._row_prices)
        keys, prices = self._row_keys, self._row_prices
        if not observed.all():
            keys, prices = keys[observed], prices[observed]
        if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
            order = np.argsort(keys, kind="stable")
            keys, prices = keys[order], prices[order]
        return keys, prices

    @cached_property
    def _card_starts(self) -> IntArray:
        """Where each card's observed prices start among ``keys`` (and, last, their end)."""
        bounds = np.arange(len(self.cards) + 1, dtype=np.int64) << 32
        starts: IntArray = np.searchsorted(self.keys, bounds, side="left").astype(np.int64)
        return starts

    @cached_property
    def _grid(self) -> tuple[int, int, IntArray] | None:
        """``(first day, days, counts)``: ``counts[card * days + day - first]`` is the number of
        observed prices at ``(card, day)`` or before in key order, for lookups without a
        search. Built when cards x days is at most a few times the prices (a panel), else
        None (lookups search ``keys``)."""
        if not len(self.keys):
            return None
        days = self.days
        first = int(days.min())
        span = int(days.max()) - first + 1
        cells = len(self.cards) * span
        if cells > GRID_CELLS_PER_PRICE * len(days) + GRID_SLACK:
            return None
        flat = self.codes * span + (days - first)
        return first, span, np.cumsum(np.bincount(flat, minlength=cells))

    def _upto(self, safe: IntArray, days: IntArray) -> IntArray:
        """The number of observed prices in key order up to each ``(card, day)``, inclusive:
        the end of each card's prices dated on or before the day."""
        grid = self._grid
        if grid is None:
            found: IntArray = np.searchsorted(self.keys, sort_keys(safe, days + 1), side="left")
            return found
        first, span, counts = grid
        offset = days - first
        pos: IntArray = counts[safe * span + np.clip(offset, 0, span - 1)]
        before = offset < 0  # before the first day: the card's start
        if before.any():
            pos = np.where(before, self._card_starts[safe], pos)
        return pos

    @property
    def keys(self) -> IntArray:
        """``card code << 32 | day`` of each observed price, ascending."""
        return self._sorted[0]

    @property
    def prices(self) -> FloatArray:
        """The observed prices, sorted by card and date."""
        return self._sorted[1]

    @property
    def codes(self) -> IntArray:
        """Card code (position in ``cards``) of each observed price."""
        codes: IntArray = self.keys >> 32
        return codes

    @property
    def days(self) -> IntArray:
        """Day number (days since 1970-01-01) of each observed price."""
        days: IntArray = (self.keys & 0xFFFFFFFF) - DAY_OFFSET
        return days

    def card_codes(self, card_ids: Any) -> IntArray:
        """Position of each card id among ``cards`` (-1 for cards with no price)."""
        ids = card_ids if isinstance(card_ids, pd.Series) else pd.Series(card_ids)
        own, categories = codes_of(ids)
        if categories is self.cards or categories.equals(self.cards):
            same: IntArray = own.astype(np.int64)
            return same
        mapping = np.append(self.cards.get_indexer(categories), -1)  # code -1 stays -1
        mapped: IntArray = mapping[own].astype(np.int64)
        return mapped

    def covers(self, at: pd.DataFrame) -> bool:
        """Whether ``at`` is the indexed history's own rows (a view of the same frame)."""
        if len(at) != len(self._row_codes):
            return False
        arrays = _row_arrays(at)
        return (
            arrays is not None
            and self._row_arrays is not None
            and (same_buffers(arrays, self._row_arrays))
        )

    def window_mean_at(self, at: pd.DataFrame, window: int, min_periods: int = 1) -> FloatArray:
        """``window_mean(*locate(at), window, min_periods)``, with a fast path (chunked, on
        all cores) when ``at`` is the history's own rows."""
        if self.covers(at):
            return self._rows_window_mean(window, min_periods)
        return self.window_mean(*self.locate(at), window, min_periods)

    def _rows_window_mean(self, window: int, min_periods: int) -> FloatArray:
        card, prices = self._row_codes, self._row_prices
        order = None
        if not self._rows_sorted:
            order = np.argsort(self._row_keys, kind="stable")
            card, prices = card[order], prices[order]
        out = np.empty(len(card))
        # work units of a quarter chunk, so that the threads share a pass: temporaries
        # stay small and are reused
        bounds = card_aligned_chunks(card, max(CHUNK_ROWS // 4, 1))

        def work(span: tuple[int, int]) -> None:
            a, b = span
            out[a:b] = _sorted_window_mean(card[a:b], prices[a:b], window, min_periods)

        spans = list(pairwise(bounds))
        if len(spans) > 1 and THREADS > 1:
            with ThreadPoolExecutor(THREADS) as pool:  # numpy releases the GIL in these loops
                list(pool.map(work, spans))
        else:
            for span in spans:
                work(span)
        if order is None:
            return out
        unsorted = np.empty_like(out)
        unsorted[order] = out
        return unsorted

    def locate(self, at: pd.DataFrame) -> tuple[IntArray, IntArray]:
        """For each row of ``at`` (``card_id, date``): ``(pos, count)``, where ``count`` is the
        number of the card's observed prices dated strictly before the row's date and
        ``prices[pos - count : pos]`` are those prices. Unknown cards get ``count == 0``."""
        if self.covers(at):  # `at` is the history's own rows: no search
            return self._locate_rows()
        codes = self.card_codes(at[ID])
        known = codes >= 0
        safe = np.where(known, codes, 0)
        days = day_numbers(at[DATE])
        if known.all() and np.array_equal(sort_keys(safe, days), self._row_keys):
            return self._locate_rows()
        pos = self._upto(safe, days - 1)  # strictly before the day
        count = np.where(known, pos - self._card_starts[safe], 0)
        return pos.astype(np.int64, copy=False), count.astype(np.int64, copy=False)

    def locate_asof(
        self, card_ids: Any, cutoff: Any, since: Any = None
    ) -> tuple[IntArray, IntArray]:
        """``locate`` as of a cutoff per row: ``count`` is the number of the card's observed
        prices dated on or before ``cutoff`` (and, with ``since``, on or after it), and
        ``prices[pos - count : pos]`` are those prices."""
        ids = card_ids if isinstance(card_ids, pd.Series) else pd.Series(card_ids)
        return self.locate_codes_asof(self.card_codes(ids), cutoff, since)

    def locate_codes_asof(
        self, codes: IntArray, cutoff: Any, since: Any = None
    ) -> tuple[IntArray, IntArray]:
        """``locate_asof`` of cards given by their positions in ``cards`` (-1: unknown)."""
        since_days = None if since is None else day_numbers(since)
        return self.locate_codes_on_days(codes, day_numbers(cutoff), since_days)

    def locate_codes_on_days(
        self, codes: IntArray, days: IntArray, since: IntArray | None = None
    ) -> tuple[IntArray, IntArray]:
        """``locate_codes_asof`` with the cutoffs (and ``since``) as day numbers."""
        known = codes >= 0
        safe = np.where(known, codes, 0)
        pos = self._upto(safe, days)
        # with `since`, the card's prices before it do not count
        begin = self._card_starts[safe] if since is None else self._upto(safe, since - 1)
        count = np.where(known, np.maximum(pos - begin, 0), 0)
        return pos.astype(np.int64, copy=False), count.astype(np.int64, copy=False)

    def _locate_rows(self) -> tuple[IntArray, IntArray]:
        """``locate`` for the history's own rows: the observed rows before each row, counted
        in key order (history keys are unique, so "before" means strictly earlier)."""
        keys, observed = self._row_keys, ~np.isnan(self._row_prices)
        order = None
        if len(keys) > 1 and not (keys[1:] > keys[:-1]).all():
            order = np.argsort(keys, kind="stable")
            keys, observed = keys[order], observed[order]
        pos, count = observed_before(keys >> 32, observed)
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

    def window_mean_asof(
        self, codes: IntArray, cutoff: Any, window: int, min_periods: int = 1
    ) -> FloatArray:
        """``window_mean(*locate_codes_asof(codes, cutoff), window, min_periods)``: the same
        bits, read from a table of every (card, day) cell's window mean when there are as many
        lookups as a quarter of the cells (a backtest at every date asks for each row at each
        horizon)."""
        return self.window_mean_on_days(codes, day_numbers(cutoff), window, min_periods)

    def window_mean_on_days(
        self, codes: IntArray, days: IntArray, window: int, min_periods: int = 1
    ) -> FloatArray:
        """``window_mean_asof`` with the cutoffs as day numbers."""
        grid = self._grid
        if grid is None or 4 * len(codes) < len(grid[2]):
            located = self.locate_codes_on_days(codes, days)
            return self.window_mean(*located, window, min_periods)
        first, span, counts = grid
        key = (window, min_periods)
        cells = self._cell_means.get(key)
        if cells is None:
            card_of_cell = np.repeat(np.arange(len(self.cards), dtype=np.int64), span)
            count = counts - self._card_starts[card_of_cell]
            cells = self.window_mean(counts, count, window, min_periods)
            self._cell_means[key] = cells = np.append(cells, np.nan)  # last: no price
        offset = days - first
        cell = codes * span + np.minimum(offset, span - 1)
        cell[(codes < 0) | (offset < 0)] = len(cells) - 1
        means: FloatArray = cells.take(cell)
        return means

    def window_mean(
        self, pos: IntArray, count: IntArray, window: int, min_periods: int = 1
    ) -> FloatArray:
        """Mean of the last ``window`` observed prices before each located row; NaN where
        fewer than ``min_periods`` exist. Sums shifted arrays: exact, O(rows x window)."""
        # no card has more than max(count) prices before a row: a longer window adds nothing
        window = min(window, int(count.max())) if len(count) else 0
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
