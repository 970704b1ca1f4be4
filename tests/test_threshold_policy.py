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


def test_cent_prices_exactly_on_a_threshold_are_not_flipped_by_rounding():
    # (0.90 - 1.00) / 1.00 is -0.09999999999999998 in floats: still exactly -10 %
    assert decide([0.90, 1.15], [1.00, 1.00]) == ["BUY", "SELL"]
    # the moving average of 0.23, 0.20, 0.17 is 0.19999999999999998 in floats; 0.16 is -20 %
    fair = (0.17 + 0.20 + 0.23) / 3
    assert decide([0.16], [fair], buy_threshold_pct=0.2) == ["BUY"]


def test_when_buy_and_sell_both_hold_the_row_is_hold():
    assert decide(
        [1.0, 0.99, 1.01], [1.0, 1.0, 1.0], buy_threshold_pct=0, sell_threshold_pct=0
    ) == [
        "HOLD",
        "BUY",
        "SELL",
    ]


@given(
    fair_dollars=st.integers(1, 10**5),  # fair prices up to $100 000: a cent is > 1e-9 of them
    pct=st.sampled_from([1, 2, 5, 10, 12, 15, 20, 25, 30, 50]),
    side=st.sampled_from(["BUY", "SELL"]),
)
def test_whole_cent_prices_on_the_threshold_classify_as_documented(fair_dollars, pct, side):
    # prices in cents: a whole-dollar fair price puts fair * (1 -/+ pct %) on a whole cent
    fair = fair_dollars * 100  # cents
    market = fair - fair * pct // 100 if side == "BUY" else fair + fair * pct // 100
    params = {"buy_threshold_pct": pct / 100, "sell_threshold_pct": pct / 100}
    assert decide([market / 100], [fair / 100], **params) == [side]
    # one cent further inside the band is HOLD
    inside = market + 1 if side == "BUY" else market - 1
    assert decide([inside / 100], [fair / 100], **params) == ["HOLD"]


def test_a_fair_price_that_is_not_positive_gives_no_signal():
    assert decide([1.0, 1.0, 1.0], [-1.0, 0.0, 1.0]) == [None, None, "HOLD"]
