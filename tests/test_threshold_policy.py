"""The threshold policy at and around its boundaries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pokewatch_core import get_plugins
from tests.reference import threshold_signals


def decide(market, fair, **params):
    policy = get_plugins().policies.get("threshold").from_params(params)
    out = policy.decide(np.asarray(market, float), np.asarray(fair, float))
    return [None if isinstance(s, float) else s for s in np.asarray(out, dtype=object)]


def test_exact_boundaries_are_inclusive():
    # deviation exactly -0.10 -> BUY, exactly +0.15 -> SELL
    assert decide([90.0, 115.0], [100.0, 100.0]) == ["BUY", "SELL"]


def test_just_inside_the_band_is_hold():
    assert decide([90.01, 114.99, 100.0], [100.0, 100.0, 100.0]) == ["HOLD", "HOLD", "HOLD"]


def test_missing_fair_price_gives_missing_signal():
    assert decide([10.0, 10.0], [float("nan"), 10.0]) == [None, "HOLD"]


def test_thresholds_are_parameters():
    assert decide([95.0], [100.0], buy_threshold_pct="0.05") == ["BUY"]
    assert decide([105.0], [100.0], sell_threshold_pct=0.05) == ["SELL"]


def test_negative_threshold_is_rejected():
    from pokewatch_core import ConfigError

    with pytest.raises(ConfigError, match="buy_threshold_pct"):
        decide([1.0], [1.0], buy_threshold_pct=-0.1)


finite = st.floats(0.01, 1e5, allow_nan=False)


@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=50))
def test_matches_the_definition(pairs):
    market, fair = map(list, zip(*pairs, strict=False))
    assert decide(market, fair) == threshold_signals(market, fair)
