"""The per-card table (scored rows, rmse, mape and the count of each signal per card), as the
mergeable statistic ``ByCard()``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.analysis.chunks import BUY, HOLD, SELL, signal_codes
from pokewatch_core.card_ids import codes_of
from pokewatch_core.data.tables import ID, PREDICTED, PRICE, SIGNAL
from pokewatch_core.statistics import Statistic


@dataclass(frozen=True)
class CardState:
    """Per-card sums behind ``metrics_by_card``: one row per card with a row in the frame."""

    cards: np.ndarray[Any, Any]  # card ids (str)
    # shape (cards, 6): scored rows, squared error, |pct error|, BUY, SELL, HOLD rows
    sums: np.ndarray[Any, np.dtype[np.float64]]

    def merge(self, other: CardState) -> CardState:
        """Both frames' cards (a card in both adds up)."""
        cards = np.concatenate([self.cards, other.cards])
        sums = np.concatenate([self.sums, other.sums])
        unique, inverse = np.unique(cards, return_inverse=True)
        if len(unique) == len(cards):
            return CardState(cards, sums)
        added = np.zeros((len(unique), sums.shape[1]))
        np.add.at(added, inverse, sums)
        return CardState(unique, added)

    def finalize(self) -> pd.DataFrame:
        """Per card (sorted by id): scored rows, rmse, mape (percent), count of each signal."""
        scored, squared, ape, buy, sell, hold = self.sums.T
        n = np.where(scored > 0, scored, np.nan)
        out = pd.DataFrame(
            {
                ID: self.cards.astype(object),
                "scored_rows": scored.astype(np.int64),
                "rmse": np.sqrt(squared / n),
                "mape": ape / n * 100.0,
                "buy": buy.astype(np.int64),
                "sell": sell.astype(np.int64),
                "hold": hold.astype(np.int64),
            }
        )
        return out.sort_values(ID, kind="stable", ignore_index=True)


def card_state(frame: pd.DataFrame) -> CardState:
    """The per-card sums of ``frame``."""
    codes, cards = codes_of(frame[ID])
    present = codes >= 0
    card = codes[present]
    n_cards = len(cards)
    market = frame[PRICE].to_numpy(dtype=np.float64)[present]
    error = frame[PREDICTED].to_numpy(dtype=np.float64)[present] - market
    scored = ~np.isnan(error)
    error = np.where(scored, error, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ape = np.where(scored, np.abs(error) / market, 0.0)
    signal = signal_codes(frame[SIGNAL])[present]

    def per_card(weights: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        return np.bincount(card, weights=weights, minlength=n_cards)

    sums = np.stack(
        [
            per_card(scored.astype(np.float64)),
            per_card(error * error),
            per_card(ape),
            *(per_card((signal == code).astype(np.float64)) for code in (BUY, SELL, HOLD)),
        ],
        axis=1,
    )
    used = per_card() > 0
    return CardState(np.asarray(cards, dtype=object)[used], sums[used])


def metrics_by_card(frame: pd.DataFrame) -> pd.DataFrame:
    """Per card (sorted by id): scored rows, rmse, mape (percent) and the count of each
    signal."""
    return card_state(frame).finalize()


@dataclass(frozen=True)
class ByCard(Statistic[CardState]):
    """The per-card table's statistic."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> CardState:
        """``card_state(frame)``: the history is not needed."""
        return card_state(frame)
