"""Straightforward pandas versions of the default components, written independently of the
library's vectorised code, for tests to compare against."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd


def moving_average(frame: pd.DataFrame, window: int = 3, min_periods: int = 1) -> np.ndarray:
    """Per row: mean of the card's last ``window`` observed prices strictly before its date."""
    observed = frame.dropna(subset=["market_price"]).sort_values(["card_id", "date"])
    observed = observed.assign(
        incl=observed.groupby("card_id")["market_price"]
        .rolling(window, min_periods=min_periods)
        .mean()
        .reset_index(level=0, drop=True)
    )
    query = frame[["card_id", "date"]].reset_index().sort_values("date")
    merged = pd.merge_asof(
        query,
        observed[["card_id", "date", "incl"]].sort_values("date"),
        on="date",
        by="card_id",
        allow_exact_matches=False,
    )
    return merged.set_index("index").sort_index()["incl"].to_numpy(dtype=float)


def threshold_signals(market, fair, buy=0.10, sell=0.15, tolerance=1e-9) -> list:
    """The documented threshold rule in exact rational arithmetic: a deviation within
    ``tolerance`` of a threshold counts as on it; BUY and SELL both holding is HOLD."""
    tol = Fraction(tolerance)
    low, high = -Fraction(buy) + tol, Fraction(sell) - tol
    out = []
    for m, f in zip(market, fair, strict=True):
        if np.isnan(m) or np.isnan(f):
            out.append(None)
            continue
        d = (Fraction(m) - Fraction(f)) / Fraction(f)
        is_buy, is_sell = d <= low, d >= high
        out.append("HOLD" if is_buy == is_sell else "BUY" if is_buy else "SELL")
    return out


def metrics(frame: pd.DataFrame) -> dict[str, float]:
    """The seven default metrics, computed row by row in plain Python."""
    scored = [
        (m, p, s)
        for m, p, s in zip(
            frame["market_price"], frame["predicted_price"], frame["signal"], strict=True
        )
        if not (np.isnan(m) or np.isnan(p))
    ]
    priced = sum(1 for m in frame["market_price"] if not np.isnan(m))
    n = len(scored)
    nan = float("nan")
    return {
        "rmse": (sum((p - m) ** 2 for m, p, _ in scored) / n) ** 0.5 if n else nan,
        "mape": 100 * sum(abs(p - m) / m for m, p, _ in scored) / n if n else nan,
        "dataset_size": float(n),
        "coverage_rate": 100 * n / priced if priced else nan,
        "buy_rate": 100 * sum(s == "BUY" for *_, s in scored) / n if n else nan,
        "sell_rate": 100 * sum(s == "SELL" for *_, s in scored) / n if n else nan,
        "hold_rate": 100 * sum(s == "HOLD" for *_, s in scored) / n if n else nan,
    }
