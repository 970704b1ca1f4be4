"""A bounded uniform sample of the scored rows' (market, predicted) prices, as the mergeable
statistic ``Sample()``: what the plots of an evaluation whose frame is not in memory draw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.data.tables import PREDICTED, PRICE
from pokewatch_core.statistics import Statistic

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
class Sample(Statistic[PriceSample]):
    """The plots' sample of price pairs."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> PriceSample:
        """``price_sample(frame)``: the history is not needed."""
        return price_sample(frame)
