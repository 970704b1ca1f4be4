"""An EWMA model, a last-price model that joins card metadata, two metrics (a median absolute
error that computes itself, and a hit rate that reads a mergeable ``Sums`` statistic) and a
symmetric band policy.

Written only against the public API of ``pokewatch_core``, with ordinary pandas: the frames
PokeWatch hands to plugins hold ``card_id`` as plain strings, so they merge, join and map
against the plugin's own string-keyed tables with no cast.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core import (
    PREDICTED,
    PRICE,
    SIGNALS,
    Metric,
    Model,
    PriceIndex,
    SignalPolicy,
    Sums,
    hookimpl,
)


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


# Premium on the last price by rarity, for cards listed in the metadata table.
RARITY_PREMIUM = {"Common": 0.0, "Uncommon": 0.0, "Rare": 0.01, "Double Rare": 0.02}


@dataclass
class LastPriceWithPremium(Model):
    """The card's last observed price before the date, times ``1 + premium`` of its rarity
    (from a card metadata table; 0 for cards it does not list)."""

    name: ClassVar[str] = "last_price_premium"
    description: ClassVar[str] = (
        "Last observed price strictly before the date times (1 + rarity premium) from a "
        "card metadata CSV (card_id, rarity)."
    )

    metadata_csv: str = ""  # empty: the table shipped with this plugin
    use_premium: bool = True

    def _metadata(self) -> pd.DataFrame:
        # ids are text: "007" must not become the number 7
        if self.metadata_csv:
            return pd.read_csv(self.metadata_csv, dtype={"card_id": str})
        with resources.files("pokewatch_ewma").joinpath("card_metadata.csv").open() as fh:
            return pd.read_csv(fh, dtype={"card_id": str})

    def predict(self, history: pd.DataFrame, at: pd.DataFrame) -> np.ndarray:
        observed = history.dropna(subset=["market_price"]).sort_values("date")
        # rebuilt from plain numpy arrays, as plugin code often does
        requests = pd.DataFrame(
            {
                "card_id": np.asarray(at["card_id"]),
                "date": np.asarray(at["date"]),
                "row": np.arange(len(at)),
            }
        ).sort_values("date", kind="stable")
        last = pd.merge_asof(
            requests,
            observed[["card_id", "date", "market_price"]],
            on="date",
            by="card_id",
            allow_exact_matches=False,  # strictly before the date: no look-ahead
        )
        metadata = self._metadata()
        last = last.merge(metadata[["card_id", "rarity"]], on="card_id", how="left")
        premium_by_card = dict(
            zip(metadata["card_id"], metadata["rarity"].map(RARITY_PREMIUM), strict=True)
        )
        premium = last["card_id"].map(premium_by_card).fillna(0.0)
        factor = 1.0 + premium if self.use_premium else 1.0
        fair = (last["market_price"] * factor).to_numpy(dtype=float)
        out = np.empty(len(at))
        out[last["row"].to_numpy()] = fair
        return out


@dataclass
class MedianAbsoluteError(Metric):
    """Median absolute error in dollars over rows with a market price and a prediction."""

    name: ClassVar[str] = "median_ae"
    description: ClassVar[str] = (
        "Median absolute error |predicted - market| over scored rows (price)."
    )
    unit: ClassVar[str] = "price"
    greater_is_better: ClassVar[bool | None] = False

    # A median does not merge exactly: the metric computes itself (on the dask engine, over
    # the evaluation frame gathered to the client).
    def compute(self, frame: pd.DataFrame) -> float:
        error = (frame[PREDICTED] - frame[PRICE]).abs().dropna()
        return float(error.median()) if len(error) else float("nan")


@dataclass(frozen=True)
class WithinTolerance(Sums[tuple[int, int]]):
    """Scored rows whose prediction is within ``tolerance`` of the market price, and scored
    rows: sums, so they merge by adding (no ``merge`` to write)."""

    tolerance: float

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> tuple[int, int]:
        market = frame[PRICE].to_numpy(dtype=float)
        predicted = frame[PREDICTED].to_numpy(dtype=float)
        scored = ~(np.isnan(market) | np.isnan(predicted))
        with np.errstate(invalid="ignore", divide="ignore"):
            close = np.abs(predicted - market) <= self.tolerance * np.abs(market)
        return int(np.count_nonzero(close & scored)), int(np.count_nonzero(scored))


@dataclass
class HitRate(Metric):
    """Share of scored rows predicted within ``tolerance`` of the market price."""

    name: ClassVar[str] = "hit_rate"
    description: ClassVar[str] = (
        "Scored rows whose prediction is within `tolerance` of the market price (fraction)."
    )
    unit: ClassVar[str] = "fraction"
    greater_is_better: ClassVar[bool | None] = True

    tolerance: float = 0.1

    def __post_init__(self) -> None:
        if self.tolerance < 0:
            raise ValueError(f"tolerance must be at least 0, got {self.tolerance}")

    def statistic(self) -> WithinTolerance:
        return WithinTolerance(self.tolerance)

    def finalize(self, value: tuple[int, int]) -> float:
        hits, scored = value
        return hits / scored if scored else float("nan")


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
    register(LastPriceWithPremium)


@hookimpl
def pokewatch_register_metrics(register):
    register(MedianAbsoluteError)
    register(HitRate)


@hookimpl
def pokewatch_register_signal_policies(register):
    register(Band)
