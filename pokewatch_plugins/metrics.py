"""The default metrics over the evaluation frame.

A row is *scored* when it has both a market price and a predicted price; every error and
rate below is over scored rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core import Metric


def _scored(frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    market = frame["market_price"].to_numpy(dtype=np.float64)
    predicted = frame["predicted_price"].to_numpy(dtype=np.float64)
    mask = ~(np.isnan(market) | np.isnan(predicted))
    return market[mask], predicted[mask]


@dataclass
class Rmse(Metric):
    name: ClassVar[str] = "rmse"
    description: ClassVar[str] = (
        "Root mean squared error of predicted vs market price over rows with a prediction."
    )

    def compute(self, frame: pd.DataFrame) -> float:
        market, predicted = _scored(frame)
        if not len(market):
            return float("nan")
        return float(np.sqrt(np.mean((predicted - market) ** 2)))


@dataclass
class Mape(Metric):
    name: ClassVar[str] = "mape"
    description: ClassVar[str] = (
        "Mean absolute percentage error |predicted - market| / market, in percent."
    )

    def compute(self, frame: pd.DataFrame) -> float:
        market, predicted = _scored(frame)
        if not len(market):
            return float("nan")
        return float(np.mean(np.abs(predicted - market) / np.abs(market)) * 100.0)


@dataclass
class DatasetSize(Metric):
    name: ClassVar[str] = "dataset_size"
    description: ClassVar[str] = "Number of rows with a prediction (and a market price)."

    def compute(self, frame: pd.DataFrame) -> float:
        return float(len(_scored(frame)[0]))


@dataclass
class CoverageRate(Metric):
    name: ClassVar[str] = "coverage_rate"
    description: ClassVar[str] = "Percent of rows with a market price that have a prediction."

    def compute(self, frame: pd.DataFrame) -> float:
        priced = int(frame["market_price"].notna().sum())
        if not priced:
            return float("nan")
        return 100.0 * len(_scored(frame)[0]) / priced


@dataclass
class _SignalRate(Metric):
    signal: ClassVar[str] = ""

    def compute(self, frame: pd.DataFrame) -> float:
        market = frame["market_price"].to_numpy(dtype=np.float64)
        predicted = frame["predicted_price"].to_numpy(dtype=np.float64)
        mask = ~(np.isnan(market) | np.isnan(predicted))
        total = int(mask.sum())
        if not total:
            return float("nan")
        hits = (frame["signal"] == self.signal).to_numpy(dtype=bool, na_value=False)
        return 100.0 * int((hits & mask).sum()) / total


@dataclass
class BuyRate(_SignalRate):
    name: ClassVar[str] = "buy_rate"
    description: ClassVar[str] = "Percent of rows with a prediction whose signal is BUY."
    signal: ClassVar[str] = "BUY"


@dataclass
class SellRate(_SignalRate):
    name: ClassVar[str] = "sell_rate"
    description: ClassVar[str] = "Percent of rows with a prediction whose signal is SELL."
    signal: ClassVar[str] = "SELL"


@dataclass
class HoldRate(_SignalRate):
    name: ClassVar[str] = "hold_rate"
    description: ClassVar[str] = "Percent of rows with a prediction whose signal is HOLD."
    signal: ClassVar[str] = "HOLD"


DEFAULT_METRICS: tuple[type[Metric], ...] = (
    Rmse,
    Mape,
    DatasetSize,
    CoverageRate,
    BuyRate,
    SellRate,
    HoldRate,
)
