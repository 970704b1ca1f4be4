"""The default metrics over the evaluation frame.

A row is *scored* when it has both a market price and a predicted price; every error and
rate below is over scored rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core import SIGNALS, Metric


def _errors(frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """predicted - market (NaN where either is missing), and the scored-row mask."""
    market = frame["market_price"].to_numpy(dtype=np.float64)
    error = frame["predicted_price"].to_numpy(dtype=np.float64) - market
    return error, ~np.isnan(error)


def _scored_count(frame: pd.DataFrame) -> int:
    return int(np.count_nonzero(_errors(frame)[1]))


@dataclass
class Rmse(Metric):
    name: ClassVar[str] = "rmse"
    description: ClassVar[str] = (
        "Root mean squared error of predicted vs market price over rows with a prediction."
    )

    def compute(self, frame: pd.DataFrame) -> float:
        error, scored = _errors(frame)
        n = int(np.count_nonzero(scored))
        if not n:
            return float("nan")
        error = np.where(scored, error, 0.0)
        return float(np.sqrt(np.dot(error, error) / n))


@dataclass
class Mape(Metric):
    name: ClassVar[str] = "mape"
    description: ClassVar[str] = (
        "Mean absolute percentage error |predicted - market| / market, in percent."
    )

    def compute(self, frame: pd.DataFrame) -> float:
        error, scored = _errors(frame)
        n = int(np.count_nonzero(scored))
        if not n:
            return float("nan")
        market = frame["market_price"].to_numpy(dtype=np.float64)
        ratio = np.abs(np.where(scored, error, 0.0)) / np.where(scored, np.abs(market), 1.0)
        return float(ratio.sum() / n * 100.0)


@dataclass
class DatasetSize(Metric):
    name: ClassVar[str] = "dataset_size"
    description: ClassVar[str] = "Number of rows with a prediction (and a market price)."

    def compute(self, frame: pd.DataFrame) -> float:
        return float(_scored_count(frame))


@dataclass
class CoverageRate(Metric):
    name: ClassVar[str] = "coverage_rate"
    description: ClassVar[str] = "Percent of rows with a market price that have a prediction."

    def compute(self, frame: pd.DataFrame) -> float:
        priced = int(np.count_nonzero(~np.isnan(frame["market_price"].to_numpy(np.float64))))
        if not priced:
            return float("nan")
        return 100.0 * _scored_count(frame) / priced


def _is_signal(column: pd.Series[Any], signal: str) -> np.ndarray[Any, Any]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        if signal not in categories:
            return np.zeros(len(column), dtype=bool)
        return np.asarray(column.array.codes) == categories.index(signal)
    return np.asarray((column == signal).to_numpy(dtype=bool, na_value=False))


@dataclass
class _SignalRate(Metric):
    signal: ClassVar[str] = ""

    def compute(self, frame: pd.DataFrame) -> float:
        scored = _errors(frame)[1]
        total = int(np.count_nonzero(scored))
        if not total:
            return float("nan")
        hits = _is_signal(frame["signal"], self.signal) & scored
        return 100.0 * int(np.count_nonzero(hits)) / total


@dataclass
class BuyRate(_SignalRate):
    name: ClassVar[str] = "buy_rate"
    description: ClassVar[str] = "Percent of rows with a prediction whose signal is BUY."
    signal: ClassVar[str] = SIGNALS[0]


@dataclass
class SellRate(_SignalRate):
    name: ClassVar[str] = "sell_rate"
    description: ClassVar[str] = "Percent of rows with a prediction whose signal is SELL."
    signal: ClassVar[str] = SIGNALS[1]


@dataclass
class HoldRate(_SignalRate):
    name: ClassVar[str] = "hold_rate"
    description: ClassVar[str] = "Percent of rows with a prediction whose signal is HOLD."
    signal: ClassVar[str] = SIGNALS[2]


DEFAULT_METRICS: tuple[type[Metric], ...] = (
    Rmse,
    Mape,
    DatasetSize,
    CoverageRate,
    BuyRate,
    SellRate,
    HoldRate,
)
