"""The threshold signal policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core import SIGNALS, SignalPolicy


@dataclass
class ThresholdPolicy(SignalPolicy):
    """BUY when the market is far enough below the fair price, SELL when far enough above."""

    name: ClassVar[str] = "threshold"
    description: ClassVar[str] = (
        "deviation = (market - fair) / fair; BUY if deviation <= -buy_threshold_pct, "
        "SELL if >= sell_threshold_pct, else HOLD."
    )

    buy_threshold_pct: float = 0.10
    sell_threshold_pct: float = 0.15

    def __post_init__(self) -> None:
        for key in ("buy_threshold_pct", "sell_threshold_pct"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")

    def decide(self, market_price: Any, fair_price: Any) -> pd.Categorical:
        market = np.asarray(market_price, dtype=np.float64)
        fair = np.asarray(fair_price, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            deviation = (market - fair) / fair
        codes = np.full(len(market), 2, dtype=np.int8)  # HOLD
        codes[deviation <= -self.buy_threshold_pct] = 0  # BUY
        codes[deviation >= self.sell_threshold_pct] = 1  # SELL
        codes[~np.isfinite(deviation)] = -1  # missing
        return pd.Categorical.from_codes(codes, categories=list(SIGNALS))
