"""The overview of an evaluation (rows, cards and date range of the data; rows with no price,
scored rows, priced rows with no prediction of the scored period), as the mergeable statistic
``Overview()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of
from pokewatch_core.data.tables import DATE, ID, PREDICTED, PRICE, day_dates, day_numbers
from pokewatch_core.statistics import Statistic, same_rows


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
        first, last = pd.DatetimeIndex(day_dates([self.first_day, self.last_day]))
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


@dataclass(frozen=True)
class Overview(Statistic[OverviewState]):
    """The overview's statistic: the data's rows are the history's and the scored rows (the
    same rows without a test start)."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> OverviewState:
        """The overview of ``history`` and ``frame`` together, the scored period ``frame``."""
        if same_rows(frame, history):
            return overview_state(frame, None)
        scored = overview_state(frame, None)
        before = overview_state(history.assign(**{PREDICTED: np.nan}), None)
        cards = [codes_of(part[ID]) for part in (history, frame)]
        labels = [pd.Index(ids[np.unique(codes[codes >= 0])]) for codes, ids in cards]
        return OverviewState(
            rows=before.rows + scored.rows,
            cards=len(labels[0].union(labels[1])),
            priced=before.priced + scored.priced,
            first_day=float(np.fmin(before.first_day, scored.first_day)),
            last_day=float(np.fmax(before.last_day, scored.last_day)),
            scored_period_rows=scored.scored_period_rows,
            no_price=scored.no_price,
            scored=scored.scored,
            no_prediction=scored.no_prediction,
        )
