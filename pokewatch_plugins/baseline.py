"""The moving-average baseline model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core import CUTOFF, ID, WINDOW_START, Model, PriceIndex


@dataclass
class BaselineMovingAverage(Model):
    """Mean of the card's last ``window_size`` observed prices strictly before the date."""

    name: ClassVar[str] = "baseline_moving_average"
    description: ClassVar[str] = (
        "Mean of the card's last window_size observed prices strictly before the date "
        "(needs at least min_periods of them)."
    )
    artifact_name: ClassVar[str] = "baseline_model"

    window_size: int = 3
    min_periods: int = 1

    # A million observations is thousands of years of daily prices: anything larger is a
    # typo, and a window longer than every history means the same as the longest history.
    MAX_WINDOW: ClassVar[int] = 1_000_000

    def __post_init__(self) -> None:
        if not 1 <= self.window_size <= self.MAX_WINDOW:
            raise ValueError(
                f"window_size must be between 1 and {self.MAX_WINDOW}, got {self.window_size}"
            )
        if not 1 <= self.min_periods <= self.window_size:
            raise ValueError(
                f"min_periods must be between 1 and window_size ({self.window_size}), "
                f"got {self.min_periods}"
            )

    answers_cutoffs: ClassVar[bool] = True  # the last prices on or before each row's cutoff

    def history_needed(self) -> int:
        """A sliding window must hold ``window_size`` periods."""
        return self.window_size

    def predict(self, history: pd.DataFrame, at: pd.DataFrame) -> np.ndarray[Any, Any]:
        index = PriceIndex.build(history)
        if CUTOFF not in at.columns:  # each card's observed prices strictly before the date
            return index.window_mean_at(at, self.window_size, self.min_periods)
        cutoff = at[CUTOFF].to_numpy()
        if WINDOW_START not in at.columns:  # expanding windows
            codes = index.card_codes(at[ID])
            return index.window_mean_asof(codes, cutoff, self.window_size, self.min_periods)
        located = index.locate_asof(at[ID], cutoff, at[WINDOW_START].to_numpy())
        return index.window_mean(*located, self.window_size, self.min_periods)
