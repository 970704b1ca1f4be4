"""An EWMA model, a mean-absolute-error metric and a symmetric band policy.

Written only against the public API of ``pokewatch_core``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core import SIGNALS, Metric, Model, PriceIndex, SignalPolicy, hookimpl


@dataclass
class Ewma(Model):
    """Exponentially weighted moving average of the card's earlier observed prices."""

    name: ClassVar[str] = "ewma"
    description: ClassVar[str] = (
        "Exponentially weighted moving average (weight alpha on the newest) of the card's "
        "observed prices strictly before the date."
    )

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")

    def predict(self, history: pd.DataFrame, at: pd.DataFrame) -> np.ndarray:
        index = PriceIndex.build(history)
        pos, count = index.locate(at)  # the card's observed prices strictly before each date
        if not len(index.prices):
            return np.full(len(at), np.nan)
        # EWMA including each observation, per card (prices are sorted by card, then date)
        smoothed = (
            pd.Series(index.prices)
            .groupby(index.codes)
            .ewm(alpha=self.alpha, adjust=False)
            .mean()
            .reset_index(level=0, drop=True)
            .sort_index()
            .to_numpy()
        )
        return np.where(count > 0, smoothed[np.maximum(pos - 1, 0)], np.nan)


@dataclass
class MeanAbsoluteError(Metric):
    """Mean absolute error in dollars over rows with a market price and a prediction."""

    name: ClassVar[str] = "mae"
    description: ClassVar[str] = "Mean absolute error |predicted - market| over scored rows ($)."

    def compute(self, frame: pd.DataFrame) -> float:
        error = (frame["predicted_price"] - frame["market_price"]).abs().dropna()
        return float(error.mean()) if len(error) else float("nan")


@dataclass
class Band(SignalPolicy):
    """BUY below ``fair * (1 - width)``, SELL above ``fair * (1 + width)``, else HOLD."""

    name: ClassVar[str] = "band"
    description: ClassVar[str] = (
        "BUY if market < fair * (1 - width), SELL if market > fair * (1 + width), else HOLD."
    )

    width: float = 0.1

    def decide(self, market_price: Any, fair_price: Any) -> np.ndarray:
        market = np.asarray(market_price, dtype=float)
        fair = np.asarray(fair_price, dtype=float)
        out = np.full(len(market), SIGNALS[2], dtype=object)
        out[market < fair * (1 - self.width)] = SIGNALS[0]
        out[market > fair * (1 + self.width)] = SIGNALS[1]
        out[np.isnan(fair) | np.isnan(market)] = None
        return out


@hookimpl
def pokewatch_register_models(register):
    register(Ewma)


@hookimpl
def pokewatch_register_metrics(register):
    register(MeanAbsoluteError)


@hookimpl
def pokewatch_register_signal_policies(register):
    register(Band)
