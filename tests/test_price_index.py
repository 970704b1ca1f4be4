"""PriceIndex's as-of lookups against a direct count of each card's prices, on both of its
lookup paths (the cards x days table and the binary search)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch_core import PriceIndex
from pokewatch_core.data import price_index
from tests.conftest import panels

DAY = pd.Timedelta(days=1)


def expected_prices(frame: pd.DataFrame, card: str, low, high) -> list[float]:
    """The card's observed prices dated in [low, high], oldest first (None: unbounded)."""
    rows = frame[(frame["card_id"] == card) & frame["market_price"].notna()]
    if low is not None:
        rows = rows[rows["date"] >= low]
    if high is not None:
        rows = rows[rows["date"] <= high]
    return rows.sort_values("date")["market_price"].tolist()


def patched(path: str) -> pytest.MonkeyPatch:
    """A lookup path forced: a table of any size allowed (``table``), or none (``search``)."""
    patch = pytest.MonkeyPatch()
    if path == "search":
        patch.setattr(price_index, "GRID_CELLS_PER_PRICE", -1)
        patch.setattr(price_index, "GRID_SLACK", 0)
    else:
        patch.setattr(price_index, "GRID_SLACK", 1 << 30)
    return patch


def _queries(frame: pd.DataFrame, data) -> pd.DataFrame:
    """Rows to look up: known and unknown cards, dates before, inside and after the data."""
    first, last = frame["date"].min(), frame["date"].max()
    cards = [*frame["card_id"].unique(), "unknown"]
    n = data.draw(st.integers(1, 12))
    return pd.DataFrame(
        {
            "card_id": [data.draw(st.sampled_from(cards)) for _ in range(n)],
            "date": [
                first + data.draw(st.integers(-3, (last - first).days + 3)) * DAY for _ in range(n)
            ],
        }
    )


@pytest.mark.parametrize("lookup_path", ["table", "search"])
@settings(max_examples=30, deadline=None)
@given(frame=panels(max_cards=4, max_days=20), data=st.data())
def test_lookups_equal_a_direct_count(lookup_path, frame, data):
    patch = patched(lookup_path)
    try:
        index = PriceIndex.build(frame)
        assert (index._grid is None) == (lookup_path == "search")
    finally:
        patch.undo()
    at = _queries(frame, data)
    window = data.draw(st.integers(1, 6))
    since = (at["date"] - (window - 1) * DAY).to_numpy()
    strictly = index.locate(at)
    asof = index.locate_asof(at["card_id"], at["date"].to_numpy())
    sliding = index.locate_asof(at["card_id"], at["date"].to_numpy(), since)
    for i, (card, date) in enumerate(zip(at["card_id"], at["date"], strict=True)):
        cases = [
            (strictly, expected_prices(frame, card, None, date - DAY)),
            (asof, expected_prices(frame, card, None, date)),
            (sliding, expected_prices(frame, card, date - (window - 1) * DAY, date)),
        ]
        for (pos, count), prices in cases:
            p, c = int(pos[i]), int(count[i])
            assert c == len(prices)
            assert index.prices[p - c : p].tolist() == prices


def test_a_sparse_history_searches(monkeypatch):
    """Two cards priced ten years apart: a cards x days table would dwarf the prices."""
    frame = pd.DataFrame(
        {
            "card_id": ["a", "b"],
            "date": pd.to_datetime(["2010-01-01", "2020-01-01"]),
            "market_price": [1.0, 2.0],
        }
    )
    monkeypatch.setattr(price_index, "GRID_SLACK", 0)
    index = PriceIndex.build(frame)
    assert index._grid is None
    pos, count = index.locate_asof(pd.Series(["b"]), pd.to_datetime(["2021-01-01"]).to_numpy())
    assert index.prices[pos[0] - count[0] : pos[0]].tolist() == [2.0]


@given(
    history=panels(max_cards=4, max_days=20),
    window=st.integers(1, 5),
    min_periods=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
@settings(max_examples=60, deadline=None)
def test_window_means_from_the_cell_table_equal_the_located_ones(
    history, window, min_periods, seed
):
    """Many as-of lookups read a table of every (card, day)'s window mean: the same bits as
    locating each, for unknown cards and days before, inside and after the history."""
    import numpy as np

    index = PriceIndex.build(history)
    min_periods = min(min_periods, window)
    rng = np.random.default_rng(seed)
    n = 4 * 4 * 30  # enough lookups for the table
    codes = rng.integers(-1, len(index.cards), n)
    days = pd.Timestamp("2025-03-01") + pd.to_timedelta(rng.integers(-3, 25, n), unit="D")
    cutoff = days.to_numpy()
    located = index.window_mean(*index.locate_codes_asof(codes, cutoff), window, min_periods)
    assert index._grid is not None and 4 * n >= len(index._grid[2])
    table = index.window_mean_asof(codes, cutoff, window, min_periods)
    np.testing.assert_array_equal(table, located)
