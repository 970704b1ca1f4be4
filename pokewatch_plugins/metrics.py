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


def _market(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return frame["market_price"].to_numpy(dtype=np.float64)


def _errors(frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int]:
    """predicted - market with 0 where either is missing, the unscored-row mask, and the
    number of scored rows. The error array is fresh, so callers may change it in place."""
    error = frame["predicted_price"].to_numpy(dtype=np.float64) - _market(frame)
    unscored = np.isnan(error)
    error[unscored] = 0.0
    return error, unscored, len(error) - int(np.count_nonzero(unscored))


def _unscored(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """Rows without a market price or without a prediction (a fresh array)."""
    unscored: np.ndarray[Any, Any] = np.isnan(_market(frame))
    unscored |= np.isnan(frame["predicted_price"].to_numpy(dtype=np.float64))
    return unscored


def _scored_count(frame: pd.DataFrame) -> int:
    unscored = _unscored(frame)
    return len(unscored) - int(np.count_nonzero(unscored))


@dataclass
class _Sums(Metric):
    """A metric whose state is a tuple of sums and counts over the scored rows: the states of
    frames holding different cards add up, element by element, to the state of their rows."""

    def merge(self, a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(x + y for x, y in zip(a, b, strict=True))


@dataclass
class Rmse(_Sums):
    name: ClassVar[str] = "rmse"
    description: ClassVar[str] = (
        "Root mean squared error of predicted vs market price over scored rows (price)."
    )
    unit: ClassVar[str] = "price"
    greater_is_better: ClassVar[bool | None] = False

    def state(self, frame: pd.DataFrame) -> tuple[float, int]:
        """Sum of squared errors and number of scored rows."""
        error, _, n = _errors(frame)
        return float(np.dot(error, error)), n

    def finalize(self, state: tuple[float, int]) -> float:
        squares, n = state
        return float(np.sqrt(squares / n)) if n else float("nan")


@dataclass
class Mape(_Sums):
    name: ClassVar[str] = "mape"
    description: ClassVar[str] = (
        "Mean absolute percentage error |predicted - market| / market over scored rows (percent)."
    )
    unit: ClassVar[str] = "percent"
    greater_is_better: ClassVar[bool | None] = False

    def state(self, frame: pd.DataFrame) -> tuple[float, int]:
        """Sum of |error| / |market| and number of scored rows."""
        error, unscored, n = _errors(frame)
        np.abs(error, out=error)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(error, np.abs(_market(frame)), out=error)
        error[unscored] = 0.0  # 0 / NaN market is NaN again
        return float(error.sum()), n

    def finalize(self, state: tuple[float, int]) -> float:
        ratios, n = state
        return ratios / n * 100.0 if n else float("nan")


@dataclass
class DatasetSize(Metric):
    name: ClassVar[str] = "dataset_size"
    description: ClassVar[str] = (
        "Number of rows scored: with a market price and a prediction (count)."
    )
    unit: ClassVar[str] = "count"

    def state(self, frame: pd.DataFrame) -> int:
        """Number of scored rows."""
        return _scored_count(frame)

    def merge(self, a: int, b: int) -> int:
        return a + b

    def finalize(self, state: int) -> float:
        return float(state)


@dataclass
class CoverageRate(_Sums):
    name: ClassVar[str] = "coverage_rate"
    description: ClassVar[str] = "Rows with a market price that have a prediction (percent)."
    unit: ClassVar[str] = "percent"
    greater_is_better: ClassVar[bool | None] = True

    def state(self, frame: pd.DataFrame) -> tuple[int, int]:
        """Number of scored rows and number of rows with a market price."""
        market = _market(frame)
        priced = len(market) - int(np.count_nonzero(np.isnan(market)))
        return _scored_count(frame), priced

    def finalize(self, state: tuple[int, int]) -> float:
        scored, priced = state
        return 100.0 * scored / priced if priced else float("nan")


def _is_signal(column: pd.Series[Any], signal: str) -> np.ndarray[Any, Any]:
    """A fresh boolean array: rows whose signal is ``signal``."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        if signal not in categories:
            return np.zeros(len(column), dtype=bool)
        return np.asarray(np.asarray(column.array.codes) == categories.index(signal))
    return np.array((column == signal).to_numpy(dtype=bool, na_value=False))


@dataclass
class _SignalRate(_Sums):
    signal: ClassVar[str] = ""
    unit: ClassVar[str] = "percent"

    def state(self, frame: pd.DataFrame) -> tuple[int, int]:
        """Number of scored rows with the signal and number of scored rows."""
        unscored = _unscored(frame)
        total = len(unscored) - int(np.count_nonzero(unscored))
        hits = _is_signal(frame["signal"], self.signal)
        hits[unscored] = False
        return int(np.count_nonzero(hits)), total

    def finalize(self, state: tuple[int, int]) -> float:
        hits, total = state
        return 100.0 * hits / total if total else float("nan")


@dataclass
class BuyRate(_SignalRate):
    name: ClassVar[str] = "buy_rate"
    description: ClassVar[str] = "Scored rows whose signal is BUY (percent)."
    signal: ClassVar[str] = SIGNALS[0]


@dataclass
class SellRate(_SignalRate):
    name: ClassVar[str] = "sell_rate"
    description: ClassVar[str] = "Scored rows whose signal is SELL (percent)."
    signal: ClassVar[str] = SIGNALS[1]


@dataclass
class HoldRate(_SignalRate):
    name: ClassVar[str] = "hold_rate"
    description: ClassVar[str] = "Scored rows whose signal is HOLD (percent)."
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
