"""Default metrics against independent computations, and their laws."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch_core import get_plugins
from tests.reference import metrics as reference_metrics

NAN = float("nan")


def frame_of(market, predicted, signal=None, cards=None) -> pd.DataFrame:
    n = len(market)
    return pd.DataFrame(
        {
            "card_id": cards or ["a"] * n,
            "date": pd.date_range("2025-01-01", periods=n),
            "market_price": np.asarray(market, dtype=float),
            "predicted_price": np.asarray(predicted, dtype=float),
            "signal": pd.Categorical(signal or [None] * n, categories=["BUY", "SELL", "HOLD"]),
        }
    )


def compute(name: str, frame: pd.DataFrame) -> float:
    return get_plugins().metrics.get(name)().compute(frame)


def test_rmse_and_mape_by_hand_with_nan_predictions():
    frame = frame_of([10, 20, 40, 5], [12, NAN, 30, 5])
    # rows 0, 2, 3 are scored: errors 2, -10, 0
    assert compute("rmse", frame) == pytest.approx(math.sqrt((4 + 100 + 0) / 3))
    assert compute("mape", frame) == pytest.approx(100 * (2 / 10 + 10 / 40 + 0) / 3)
    assert compute("dataset_size", frame) == 3
    assert compute("coverage_rate", frame) == pytest.approx(75.0)


def test_rows_without_market_price_are_not_scored_nor_covered():
    frame = frame_of([NAN, 10, 20], [5, 11, NAN])
    assert compute("dataset_size", frame) == 1
    assert compute("coverage_rate", frame) == pytest.approx(50.0)
    assert compute("rmse", frame) == pytest.approx(1.0)


def test_single_card_signal_rates():
    frame = frame_of(
        [10, 10, 10, 10, 10],
        [9, 12, 10, 10, NAN],
        ["SELL", "BUY", "HOLD", "HOLD", None],
    )
    assert compute("buy_rate", frame) == pytest.approx(25.0)
    assert compute("sell_rate", frame) == pytest.approx(25.0)
    assert compute("hold_rate", frame) == pytest.approx(50.0)


def test_no_scored_rows_gives_nan_not_an_error():
    frame = frame_of([10, 20], [NAN, NAN])
    for name in ("rmse", "mape", "buy_rate", "sell_rate", "hold_rate"):
        assert math.isnan(compute(name, frame)), name
    assert compute("dataset_size", frame) == 0
    assert compute("coverage_rate", frame) == 0


def test_all_seven_against_reference_on_a_random_multi_card_frame():
    rng = np.random.default_rng(7)
    n = 200
    market = rng.uniform(0.1, 500, n)
    market[rng.random(n) < 0.1] = NAN
    predicted = market * rng.uniform(0.7, 1.3, n)
    predicted[rng.random(n) < 0.2] = NAN
    signals = rng.choice(["BUY", "SELL", "HOLD"], n).tolist()
    signals = [
        None if (np.isnan(m) or np.isnan(p)) else s
        for m, p, s in zip(market, predicted, signals, strict=False)
    ]
    cards = [f"c{i % 7}" for i in range(n)]
    frame = frame_of(market, predicted, signals, cards)
    expected = reference_metrics(frame)
    for name, value in expected.items():
        assert compute(name, frame) == pytest.approx(value, rel=1e-12), name


prices = st.floats(0.01, 1e4, allow_nan=False, allow_infinity=False)


@st.composite
def scored_frames(draw):
    n = draw(st.integers(1, 40))
    market = draw(st.lists(prices, min_size=n, max_size=n))
    predicted = [
        p if draw(st.booleans()) or i == 0 else NAN
        for i, p in enumerate(draw(st.lists(prices, min_size=n, max_size=n)))
    ]
    signals = draw(st.lists(st.sampled_from(["BUY", "SELL", "HOLD"]), min_size=n, max_size=n))
    signals = [None if np.isnan(p) else s for p, s in zip(predicted, signals, strict=False)]
    return frame_of(market, predicted, signals)


@given(scored_frames())
def test_rmse_is_non_negative_and_at_least_the_mean_absolute_error(frame):
    scored = frame.dropna(subset=["predicted_price"])
    mae = float(np.mean(np.abs(scored["predicted_price"] - scored["market_price"])))
    rmse = compute("rmse", frame)
    assert rmse >= 0
    assert rmse >= mae * (1 - 1e-12)


@given(scored_frames(), st.floats(0.01, 100))
def test_mape_is_scale_free(frame, factor):
    scaled = frame.assign(
        market_price=frame["market_price"] * factor,
        predicted_price=frame["predicted_price"] * factor,
    )
    assert compute("mape", scaled) == pytest.approx(compute("mape", frame), rel=1e-9)


@pytest.mark.slow  # a few seconds: CI's slow run has it
@settings(max_examples=50)
@given(scored_frames(), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(frame, rnd):
    order = list(range(len(frame)))
    rnd.shuffle(order)
    shuffled = frame.iloc[order].reset_index(drop=True)
    for name in get_plugins().metrics.names():
        a, b = compute(name, frame), compute(name, shuffled)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9), name


@given(scored_frames())
def test_signal_rates_are_percentages_summing_to_100(frame):
    rates = [compute(n, frame) for n in ("buy_rate", "sell_rate", "hold_rate")]
    assert all(0 <= r <= 100 for r in rates)
    assert sum(rates) == pytest.approx(100.0)
    assert 0 <= compute("coverage_rate", frame) <= 100
