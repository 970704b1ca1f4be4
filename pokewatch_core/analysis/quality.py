"""Signal quality: precision, recall, lift and mean forward returns of BUY and SELL signals,
as the mergeable statistic ``Quality(horizon)`` (the eight signal-quality metrics of one
horizon read one).

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.analysis.chunks import (
    BUY,
    SELL,
    forward_returns,
    grouped_signal_rows,
    ratio,
    signal_frame,
)
from pokewatch_core.statistics import Statistic, group_sums


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
    horizon: int = 1  # observations ahead


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
        buy_p, sell_p = ratio(buy_rise, buys), ratio(sell_fall, sells)
        return SignalQuality(
            buy_precision=buy_p,
            sell_precision=sell_p,
            buy_recall=ratio(buy_rise, rises),
            sell_recall=ratio(sell_fall, falls),
            buy_lift=ratio(buy_p, ratio(rises, n)),
            sell_lift=ratio(sell_p, ratio(falls, n)),
            mean_forward_return_buy=ratio(self.buy_return_sum, buys),
            mean_forward_return_sell=ratio(self.sell_return_sum, sells),
            horizon=self.horizon,
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
class Quality(Statistic[QualityState]):
    """The signal-quality statistic at ``horizon`` (observations ahead)."""

    horizon: int = 1

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> QualityState:
        """``quality_state(frame, horizon)``: the history is not needed."""
        return quality_state(frame, self.horizon)

    def compute_groups(
        self, frame: pd.DataFrame, history: pd.DataFrame, starts: np.ndarray[Any, Any]
    ) -> list[QualityState]:
        """Every group's state in one pass: each group's cards apart."""
        rows, kept, _ = grouped_signal_rows(frame, starts)
        ret = forward_returns(rows, self.horizon)
        has = ~np.isnan(ret)
        buy, sell = has & (rows.signal == BUY), has & (rows.signal == SELL)
        rise, fall = has & (ret > 0), has & (ret < 0)
        masks = (has, rise, fall, buy, sell, buy & rise, sell & fall)
        counts = np.stack([group_sums(kept, m) for m in masks], axis=1)
        buy_sums = group_sums(kept, np.where(buy, ret, 0.0))
        sell_sums = group_sums(kept, np.where(sell, ret, 0.0))
        count = len(starts) - 1
        return [
            QualityState(self.horizon, counts[g].astype(np.int64), buy_sums[g], sell_sums[g])
            for g in range(count)
        ]
