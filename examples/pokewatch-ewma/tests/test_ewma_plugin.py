"""The example plugin's own tests: the conformance kit, hand computations, discovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pokewatch_ewma.plugin import (
    Band,
    Ewma,
    HitRate,
    LastPriceWithPremium,
    MedianAbsoluteError,
    WithinTolerance,
)

from pokewatch_core import evaluate, get_plugins
from pokewatch_core.testing import check_metric, check_model, check_policy


def test_components_keep_the_contract():
    check_model(Ewma)
    check_model(Ewma(alpha=0.2))
    check_model(LastPriceWithPremium)
    check_metric(MedianAbsoluteError)
    check_metric(HitRate)
    check_metric(HitRate(tolerance=0.02))
    check_policy(Band)


def test_last_price_with_premium_joins_its_metadata_by_card_id(tmp_path):
    metadata = tmp_path / "cards.csv"
    metadata.write_text("card_id,rarity\n007,Rare\n7,Common\n")
    data = pd.DataFrame(
        {
            "card_id": ["007", "7", "007", "7", "x"],
            "date": pd.to_datetime(["2025-01-01"] * 2 + ["2025-01-02"] * 3),
            "market_price": [10.0, 20.0, 11.0, 21.0, 5.0],
        }
    )
    model = LastPriceWithPremium(metadata_csv=str(metadata))
    result = evaluate(model, data, metrics=["rmse"])
    # "007" and "7" are two cards: Rare (+1 %) and Common (+0 %); "x" is not listed
    np.testing.assert_allclose(
        result.frame["predicted_price"], [np.nan, np.nan, 10.0 * 1.01, 20.0, np.nan]
    )


def test_ewma_by_hand():
    data = pd.DataFrame(
        {
            "card_id": ["a"] * 4,
            "date": pd.date_range("2025-01-01", periods=4),
            "market_price": [10.0, 20.0, np.nan, 40.0],
        }
    )
    result = evaluate(Ewma(alpha=0.5), data)
    # 10 -> 0.5*20 + 0.5*10 = 15 -> (no price) 15 -> 0.5*40 + 0.5*15
    np.testing.assert_allclose(result.frame["predicted_price"], [np.nan, 10.0, 15.0, 15.0])


def test_median_ae_by_hand():
    frame = pd.DataFrame(
        {"market_price": [10.0, 20.0, 30.0, 5.0], "predicted_price": [12.0, np.nan, 27.0, 15.0]}
    )
    assert MedianAbsoluteError().compute(frame) == pytest.approx(3.0)  # of 2, 3, 10


def test_hit_rate_by_hand_and_its_statistic_by_value():
    frame = pd.DataFrame(
        {
            "card_id": ["a", "a", "b", "b"],
            "date": pd.to_datetime(["2025-01-01", "2025-01-02"] * 2),
            "market_price": [10.0, 20.0, 30.0, 5.0],
            "predicted_price": [10.5, np.nan, 26.0, 15.0],
        }
    )
    assert HitRate().compute(frame) == pytest.approx(1 / 3)  # 10.5 of 10 is within; 26 of 30 is not
    assert HitRate(tolerance=0.1).compute(frame) == pytest.approx(1 / 3)
    assert HitRate(tolerance=0.2).compute(frame) == pytest.approx(2 / 3)
    # equal tolerances: one statistic, computed once for both metrics of an evaluation
    assert HitRate(tolerance=0.2).statistic() == WithinTolerance(0.2) != WithinTolerance(0.1)


def test_found_through_the_entry_point(pokewatch_panel):
    plugins = get_plugins()
    assert plugins.models.get("ewma") is Ewma
    assert plugins.metrics.get("median_ae") is MedianAbsoluteError
    assert plugins.metrics.get("hit_rate") is HitRate
    assert plugins.policies.get("band") is Band
    result = evaluate("ewma", pokewatch_panel, policy="band", metrics=["median_ae", "mae", "rmse"])
    assert result.metrics["mae"] <= result.metrics["rmse"]
    assert result.metrics["median_ae"] > 0
