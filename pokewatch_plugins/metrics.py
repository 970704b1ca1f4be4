"""The default metrics over the evaluation frame.

A row is *scored* when it has both a market price and a predicted price; every error and
rate below is over scored rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core import PREDICTED, PRICE, SIGNAL, SIGNALS, Metric, Sums, group_sums


def _market(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return frame[PRICE].to_numpy(dtype=np.float64)


def _errors(frame: pd.DataFrame) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int]:
    """predicted - market with 0 where either is missing, the unscored-row mask, and the
    number of scored rows. The error array is fresh, so callers may change it in place."""
    error = frame[PREDICTED].to_numpy(dtype=np.float64) - _market(frame)
    unscored = np.isnan(error)
    error[unscored] = 0.0
    return error, unscored, len(error) - int(np.count_nonzero(unscored))


def _unscored(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """Rows without a market price or without a prediction (a fresh array)."""
    unscored: np.ndarray[Any, Any] = np.isnan(_market(frame))
    unscored |= np.isnan(frame[PREDICTED].to_numpy(dtype=np.float64))
    return unscored


@dataclass(frozen=True)
class SquaredErrors(Sums[tuple[float, int]]):
    """Sum of squared errors and number of scored rows."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> tuple[float, int]:
        error, _, n = _errors(frame)
        return float(np.dot(error, error)), n

    def compute_groups(
        self, frame: pd.DataFrame, history: pd.DataFrame, starts: np.ndarray[Any, Any]
    ) -> list[tuple[float, int]]:
        error, unscored, _ = _errors(frame)
        squares = group_sums(starts, error * error)
        scored = group_sums(starts, ~unscored)
        return [(float(a), int(b)) for a, b in zip(squares, scored, strict=True)]


@dataclass(frozen=True)
class PercentErrors(Sums[tuple[float, int]]):
    """Sum of |error| / |market| and number of scored rows."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> tuple[float, int]:
        error, unscored, n = _errors(frame)
        np.abs(error, out=error)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(error, np.abs(_market(frame)), out=error)
        error[unscored] = 0.0  # 0 / NaN market is NaN again
        return float(error.sum()), n

    def compute_groups(
        self, frame: pd.DataFrame, history: pd.DataFrame, starts: np.ndarray[Any, Any]
    ) -> list[tuple[float, int]]:
        error, unscored, _ = _errors(frame)
        np.abs(error, out=error)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(error, np.abs(_market(frame)), out=error)
        error[unscored] = 0.0
        sums = group_sums(starts, error)
        scored = group_sums(starts, ~unscored)
        return [(float(a), int(b)) for a, b in zip(sums, scored, strict=True)]


@dataclass(frozen=True)
class Coverage(Sums[tuple[int, int]]):
    """Number of scored rows and number of rows with a market price."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> tuple[int, int]:
        market = _market(frame)
        unscored = _unscored(frame)
        priced = len(market) - int(np.count_nonzero(np.isnan(market)))
        return len(unscored) - int(np.count_nonzero(unscored)), priced

    def compute_groups(
        self, frame: pd.DataFrame, history: pd.DataFrame, starts: np.ndarray[Any, Any]
    ) -> list[tuple[int, int]]:
        scored = group_sums(starts, ~_unscored(frame))
        priced = group_sums(starts, ~np.isnan(_market(frame)))
        return [(int(a), int(b)) for a, b in zip(scored, priced, strict=True)]


def _is_signal(column: pd.Series[Any], signal: str) -> np.ndarray[Any, Any]:
    """A fresh boolean array: rows whose signal is ``signal``."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = list(column.cat.categories)
        if signal not in categories:
            return np.zeros(len(column), dtype=bool)
        hits: np.ndarray[Any, Any] = np.asarray(column.array.codes) == categories.index(signal)
        return hits
    return np.array((column == signal).to_numpy(dtype=bool, na_value=False))


@dataclass(frozen=True)
class SignalCounts(Sums[tuple[int, ...]]):
    """Scored rows with each signal (BUY, SELL, HOLD) and scored rows."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> tuple[int, ...]:
        unscored = _unscored(frame)
        counts = []
        for signal in SIGNALS:
            hits = _is_signal(frame[SIGNAL], signal)
            hits[unscored] = False
            counts.append(int(np.count_nonzero(hits)))
        return (*counts, len(unscored) - int(np.count_nonzero(unscored)))

    def compute_groups(
        self, frame: pd.DataFrame, history: pd.DataFrame, starts: np.ndarray[Any, Any]
    ) -> list[tuple[int, ...]]:
        unscored = _unscored(frame)
        columns = []
        for signal in SIGNALS:
            hits = _is_signal(frame[SIGNAL], signal)
            hits[unscored] = False
            columns.append(group_sums(starts, hits))
        columns.append(group_sums(starts, ~unscored))
        table = np.stack(columns, axis=1).astype(np.int64)
        return [tuple(int(v) for v in row) for row in table]


@dataclass
class Rmse(Metric):
    name: ClassVar[str] = "rmse"
    description: ClassVar[str] = (
        "Root mean squared error of predicted vs market price over scored rows (price)."
    )
    unit: ClassVar[str] = "price"
    greater_is_better: ClassVar[bool | None] = False

    def statistic(self) -> SquaredErrors:
        return SquaredErrors()

    def finalize(self, value: tuple[float, int]) -> float:
        squares, n = value
        return float(np.sqrt(squares / n)) if n else float("nan")


@dataclass
class Mape(Metric):
    name: ClassVar[str] = "mape"
    description: ClassVar[str] = (
        "Mean absolute percentage error |predicted - market| / market over scored rows (percent)."
    )
    unit: ClassVar[str] = "percent"
    greater_is_better: ClassVar[bool | None] = False

    def statistic(self) -> PercentErrors:
        return PercentErrors()

    def finalize(self, value: tuple[float, int]) -> float:
        ratios, n = value
        return ratios / n * 100.0 if n else float("nan")


@dataclass
class DatasetSize(Metric):
    name: ClassVar[str] = "dataset_size"
    description: ClassVar[str] = (
        "Number of rows scored: with a market price and a prediction (count)."
    )
    unit: ClassVar[str] = "count"

    def statistic(self) -> Coverage:
        return Coverage()

    def finalize(self, value: tuple[int, int]) -> float:
        return float(value[0])


@dataclass
class CoverageRate(Metric):
    name: ClassVar[str] = "coverage_rate"
    description: ClassVar[str] = "Rows with a market price that have a prediction (percent)."
    unit: ClassVar[str] = "percent"
    greater_is_better: ClassVar[bool | None] = True

    def statistic(self) -> Coverage:
        return Coverage()

    def finalize(self, value: tuple[int, int]) -> float:
        scored, priced = value
        return 100.0 * scored / priced if priced else float("nan")


@dataclass
class _SignalRate(Metric):
    signal: ClassVar[str] = ""
    unit: ClassVar[str] = "percent"

    def statistic(self) -> SignalCounts:
        return SignalCounts()

    def finalize(self, value: tuple[int, ...]) -> float:
        hits, total = value[SIGNALS.index(self.signal)], value[-1]
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
