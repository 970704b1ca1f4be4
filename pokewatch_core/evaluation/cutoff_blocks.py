"""A backtest's forecasts grouped by cutoff, for its figures per cutoff (docs/backtests.md).

The forecasts of many cutoffs are stacked in one frame, sorted by cutoff, card and date, each
cutoff's rows one slice of it: a statistic that computes every group in one pass
(``Statistic.compute_groups``) then gives every cutoff's value at the cost of one pass over
the block, where a frame per cutoff would cost a pass per cutoff. A cutoff's rows are the
forecasts from it at every horizon: the rows dated 1 to ``horizon`` periods after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of
from pokewatch_core.columns import CUTOFF, DATE, HORIZON, ID, NAIVE, PREDICTED, PRICE, SIGNAL
from pokewatch_core.components import SIGNALS
from pokewatch_core.data.naive import SCALE_SUMS
from pokewatch_core.data.price_index import CHUNK_ROWS, GRID_CELLS_PER_PRICE, GRID_SLACK, PriceIndex
from pokewatch_core.evaluation.forecasts import Forecasts

IntArray = np.ndarray[Any, np.dtype[np.int64]]
_SIGNALS = pd.Index(list(SIGNALS))
BLOCK_ROWS = CHUNK_ROWS  # forecasts per block: its temporaries stay small


@dataclass(frozen=True)
class CutoffBlock:
    """The forecasts of consecutive cutoffs: ``frame`` (``card_id, date, market_price,
    predicted_price, signal, naive_price, horizon, cutoff``) holds cutoff ``dates[i]``'s at
    rows ``starts[i]:starts[i + 1]``, sorted by card and date (no cutoff without a row)."""

    dates: pd.DatetimeIndex
    frame: pd.DataFrame
    starts: IntArray


class _CardPeriods:
    """The forecasts' rows sorted by card and period, with the first of them at or after any
    ``(card, period)``: by a table of cards x periods when it is small enough, else by a
    binary search."""

    def __init__(self, card: IntArray, periods: IntArray, cards: int) -> None:
        self.low = int(periods.min())
        self.span = int(periods.max()) - self.low + 1
        key = card * self.span + (periods - self.low)
        self.order: IntArray | None = None
        if len(key) > 1 and not (key[1:] > key[:-1]).all():
            self.order = np.argsort(key, kind="stable")
            key = key[self.order]
        self.key = key
        cells = cards * self.span
        self.table: IntArray | None = None
        if cells <= GRID_CELLS_PER_PRICE * len(key) + GRID_SLACK:
            counts = np.bincount(key, minlength=cells)
            self.table = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def first_at(self, card: IntArray, period: IntArray) -> IntArray:
        """Position (in sorted order) of the first row of ``card`` at ``period`` or later
        (the card's end when none)."""
        cell = card * self.span + np.clip(period - self.low, 0, self.span)
        if self.table is not None:
            return self.table[cell]
        found: IntArray = np.searchsorted(self.key, cell, side="left")
        return found


class CutoffBlocks:
    """The forecasts of ``table`` grouped by cutoff, in blocks of consecutive cutoffs of
    about ``block_rows`` rows (default ``BLOCK_ROWS``): ``len`` blocks, built one at a time by
    ``block(i)``, from any thread; ``codes`` the signal codes (``(horizon, rows)``), the naive
    forecast (the card's last price on or before the cutoff) from ``index``, and the naive
    scale's sums ``scale`` in each frame's ``attrs``."""

    def __init__(
        self,
        table: pd.DataFrame,
        forecasts: Forecasts,
        codes: np.ndarray[Any, Any],
        index: PriceIndex,
        scale: tuple[float, int] | None,
        block_rows: int | None = None,
    ) -> None:
        block_rows = block_rows or BLOCK_ROWS
        cutoffs = forecasts.cutoffs
        self.horizon, self.scale, self.index = cutoffs.horizon, scale, index
        periods = self.periods = forecasts.row_periods
        self.plans: list[IntArray] = []
        if not len(periods):
            return
        n = len(periods)
        self.positions = np.arange(n) if forecasts.rows is None else forecasts.rows
        card_codes, self.cards = codes_of(table[ID])
        card = card_codes[self.positions].astype(np.int64)
        found = self.found = _CardPeriods(card, periods, len(self.cards))
        # rows per cutoff: those 1 to `horizon` periods after it (on every card)
        per_period = np.bincount(periods - found.low, minlength=found.span)
        before = np.concatenate([[0], np.cumsum(per_period)])

        def rows_upto(period: IntArray) -> IntArray:
            out: IntArray = before[np.clip(period - found.low, 0, found.span)]
            return out

        wanted = self.wanted = cutoffs.periods
        sizes = rows_upto(wanted + self.horizon + 1) - rows_upto(wanted + 1)
        self.all_dates = cutoffs.dates()
        every_card = np.arange(len(self.cards), dtype=np.int64)
        self.index_card = index.card_codes(
            pd.Series(pd.Categorical.from_codes(every_card, self.cards))
        )
        self.market = table[PRICE].to_numpy(dtype=np.float64)
        self.dates = table[DATE].to_numpy()
        self.flat_predicted = forecasts.predicted.reshape(-1)
        self.flat_codes = codes.reshape(-1)
        cards, first = len(self.cards), 0
        while first < len(wanted):
            last, rows = first, 0
            while last < len(wanted) and (
                last == first
                or (rows + sizes[last] <= block_rows and (last - first + 1) * cards <= block_rows)
            ):
                rows += int(sizes[last])
                last += 1
            chosen = np.arange(first, last)
            first = last
            chosen = chosen[sizes[chosen] > 0]
            if len(chosen):
                self.plans.append(chosen)

    def __len__(self) -> int:
        return len(self.plans)

    def block(self, i: int) -> CutoffBlock:
        """Block ``i``: its cutoffs' forecasts, each (cutoff, card)'s one run of the rows
        sorted by card and period."""
        chosen, cards, found = self.plans[i], len(self.cards), self.found
        block = self.wanted[chosen]
        pair_cutoff = np.repeat(block, cards)
        pair_card = np.tile(np.arange(cards, dtype=np.int64), len(block))
        begin = found.first_at(pair_card, pair_cutoff + 1)
        lengths = found.first_at(pair_card, pair_cutoff + self.horizon + 1) - begin
        total = int(lengths.sum())
        pair = np.repeat(np.arange(len(pair_card)), lengths)
        sorted_rows = np.arange(total) - (np.cumsum(lengths) - lengths)[pair] + begin[pair]
        f = sorted_rows if found.order is None else found.order[sorted_rows]
        group = pair // cards
        h = self.periods[f] - block[group]
        flat = (h - 1) * len(self.periods) + f
        at = self.positions[f]
        cutoff_dates = self.all_dates[chosen]
        naive_of_pair = self.index.window_mean_asof(
            self.index_card[pair_card], np.repeat(cutoff_dates.to_numpy(), cards), 1
        )
        signals = pd.Categorical.from_codes(self.flat_codes[flat], categories=_SIGNALS)
        frame = pd.DataFrame(
            {
                ID: pd.Categorical.from_codes(pair_card[pair], categories=self.cards),
                DATE: self.dates[at],
                PRICE: self.market[at],
                PREDICTED: self.flat_predicted[flat],
                SIGNAL: signals,
                NAIVE: naive_of_pair[pair],
                HORIZON: h,
                CUTOFF: cutoff_dates.to_numpy()[group],
            },
            copy=False,  # no consolidation copy: the columns are fresh
        )
        frame.attrs[SCALE_SUMS] = self.scale
        counts = np.bincount(group, minlength=len(block))
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return CutoffBlock(cutoff_dates, frame, starts)
