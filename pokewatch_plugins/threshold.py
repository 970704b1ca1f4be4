"""The threshold signal policy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core import SIGNALS, SignalPolicy

# A deviation this close to a threshold counts as on it: prices in cents put deviations exactly
# on a threshold (1.00 -> 0.90 is -10 %), and float rounding must not decide which side they fall.
TIE_TOLERANCE = 1e-9


@dataclass
class ThresholdPolicy(SignalPolicy):
    """BUY when the market is far enough below the fair price, SELL when far enough above.

    deviation = (market - fair) / fair. BUY if deviation <= -buy_threshold_pct, SELL if
    deviation >= sell_threshold_pct, else HOLD; a deviation within ``TIE_TOLERANCE`` (1e-9)
    of a threshold counts as on it. When both hold (both thresholds 0 and no deviation), the
    row is HOLD. A fair price that is not a positive number gives no signal.
    """

    name: ClassVar[str] = "threshold"
    description: ClassVar[str] = (
        "deviation = (market - fair) / fair; BUY if deviation <= -buy_threshold_pct, "
        "SELL if >= sell_threshold_pct, else HOLD (ties within 1e-9 count as on the threshold)."
    )

    buy_threshold_pct: float = 0.10
    sell_threshold_pct: float = 0.15

    def __post_init__(self) -> None:
        for key in ("buy_threshold_pct", "sell_threshold_pct"):
            if not math.isfinite(getattr(self, key)):
                raise ValueError(f"{key} must be a finite number, got {getattr(self, key)}")
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.buy_threshold_pct >= 1:  # market > 0 keeps the deviation above -1
            raise ValueError(
                f"buy_threshold_pct must be below 1 (a deviation of -100% or less is "
                f"impossible, so BUY could never happen), got {self.buy_threshold_pct}"
            )

    def decide(self, market_price: Any, fair_price: Any) -> pd.Categorical[str]:
        market = np.asarray(market_price, dtype=np.float64)
        fair = np.asarray(fair_price, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            deviation = (market - fair) / fair
        buy = deviation <= -self.buy_threshold_pct + TIE_TOLERANCE
        sell = deviation >= self.sell_threshold_pct - TIE_TOLERANCE
        codes = np.full(len(market), 2, dtype=np.int8)  # HOLD, also where both hold
        codes[buy & ~sell] = 0  # BUY
        codes[sell & ~buy] = 1  # SELL
        codes[~np.isfinite(deviation) | ~(fair > 0)] = -1  # missing: no usable fair price
        categories: pd.Index[Any] = pd.Index(list(SIGNALS))
        return pd.Categorical.from_codes(codes, categories=categories)
