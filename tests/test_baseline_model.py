"""The moving-average baseline: hand-computed values, a pandas reference, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch_core import ConfigError, evaluate
from tests.conftest import make_panel, panels
from tests.reference import moving_average

NAN = float("nan")


def table(rows):
    return pd.DataFrame(rows, columns=["card_id", "date", "market_price"]).assign(
        date=lambda f: pd.to_datetime(f["date"])
    )


def test_hand_computed_window_with_gap_and_missing_price():
    data = table(
        [
            ("a", "2025-01-01", 10.0),
            ("a", "2025-01-02", 20.0),
            ("a", "2025-01-03", NAN),  # not observed: skipped in later windows
            ("a", "2025-01-06", 30.0),  # after a gap
            ("a", "2025-01-07", 40.0),
            ("b", "2025-01-02", 5.0),
        ]
    )
    result = evaluate("baseline_moving_average", data)
    expected = [NAN, 10.0, 15.0, 15.0, 20.0, NAN]  # windows: -, [10], [10,20], [10,20], [10,20,30]
    np.testing.assert_allclose(result.frame["predicted_price"], expected)


def test_window_and_min_periods_parameters():
    data = table([("a", f"2025-01-0{d}", float(d)) for d in range(1, 6)])
    result = evaluate("baseline_moving_average", data, params={"window_size": 2, "min_periods": 2})
    np.testing.assert_allclose(result.frame["predicted_price"], [NAN, NAN, 1.5, 2.5, 3.5])


def test_invalid_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="window_size"):
        evaluate("baseline_moving_average", make_panel(), params={"window_size": 0})
    with pytest.raises(ConfigError, match="expects int"):
        evaluate("baseline_moving_average", make_panel(), params={"window_size": "three"})


@settings(max_examples=30, deadline=None)
@given(panels(), st.integers(1, 5), st.integers(1, 5))
def test_equals_pandas_reference(frame, window, min_periods):
    min_periods = min(min_periods, window)
    result = evaluate(
        "baseline_moving_average",
        frame,
        params={"window_size": window, "min_periods": min_periods},
    )
    expected = moving_average(frame, window, min_periods)
    np.testing.assert_allclose(result.frame["predicted_price"], expected, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(panels(), st.data())
def test_no_look_ahead(frame, data):
    """Changing any price on or after a row's date never changes that row's prediction."""
    row = data.draw(st.integers(0, len(frame) - 1))
    cutoff = frame.loc[row, "date"]
    later = frame["date"] >= cutoff
    new_prices = data.draw(
        st.lists(
            st.one_of(st.floats(0.01, 1000), st.just(NAN)),
            min_size=int(later.sum()),
            max_size=int(later.sum()),
        )
    )
    changed = frame.copy()
    changed.loc[later, "market_price"] = new_prices
    if changed["market_price"].isna().all():
        return
    before = evaluate("baseline_moving_average", frame).frame["predicted_price"][row]
    after = evaluate("baseline_moving_average", changed).frame["predicted_price"][row]
    assert (np.isnan(before) and np.isnan(after)) or before == after


@settings(max_examples=40, deadline=None)
@given(panels(max_cards=6, max_days=15), st.integers(1, 4))
def test_chunked_threaded_path_equals_the_general_path(frame, window):
    """The walk-forward fast path (card-aligned chunks on several threads) gives the same bits
    as locating each row and averaging, whatever the chunking."""
    import pokewatch_core.data.price_index as price_index
    from pokewatch_core import PriceIndex, prepare_prices

    table = prepare_prices(frame)
    history = table[["card_id", "date", "market_price"]]
    index = PriceIndex.build(history)
    general = index.window_mean(*index.locate(history.copy()), window)
    original = price_index.CHUNK_ROWS, price_index.THREADS
    try:
        price_index.CHUNK_ROWS, price_index.THREADS = 3, 2
        fast = index.window_mean_at(history[["card_id", "date"]], window)
    finally:
        price_index.CHUNK_ROWS, price_index.THREADS = original
    assert index.covers(history[["card_id", "date"]]) and not index.covers(history.copy())
    np.testing.assert_array_equal(fast, general)
