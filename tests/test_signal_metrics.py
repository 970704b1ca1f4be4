"""Signal-quality and strategy metrics against hand computations, and their laws."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch_core import backtest, evaluate, get_plugins, signal_quality
from tests.conftest import make_panel, panels

CATS = ["BUY", "SELL", "HOLD"]
INFERRED_PPY = "inferred.strategy_sharpe.periods_per_year"  # logged apart from the params


def frame(rows) -> pd.DataFrame:
    """rows: (card, day number, price, signal)."""
    card, day, price, signal = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "card_id": list(card),
            "date": pd.Timestamp("2025-01-01") + pd.to_timedelta(list(day), unit="D"),
            "market_price": np.array(price, dtype=float),
            "predicted_price": 1.0,
            "signal": pd.Categorical(list(signal), categories=CATS),
        }
    )


def metric(name: str, frame_: pd.DataFrame, **params) -> float:
    return get_plugins().metrics.get(name).from_params(params).compute(frame_)


ONE_CARD = frame(
    [
        ("a", 0, 10.0, "BUY"),  # -> 12: rise
        ("a", 1, 12.0, "SELL"),  # -> 9: fall
        ("a", 2, 9.0, "BUY"),  # -> 9: flat
        ("a", 3, 9.0, "HOLD"),  # -> 15: rise
        ("a", 4, 15.0, "SELL"),  # no forward price
    ]
)


def test_precision_recall_lift_by_hand():
    assert metric("buy_precision", ONE_CARD) == pytest.approx(1 / 2)
    assert metric("sell_precision", ONE_CARD) == pytest.approx(1.0)
    assert metric("buy_recall", ONE_CARD) == pytest.approx(1 / 2)  # rises: rows 0 and 3
    assert metric("sell_recall", ONE_CARD) == pytest.approx(1.0)
    assert metric("buy_lift", ONE_CARD) == pytest.approx((1 / 2) / (2 / 4))
    assert metric("sell_lift", ONE_CARD) == pytest.approx(1.0 / (1 / 4))
    assert metric("mean_forward_return_buy", ONE_CARD) == pytest.approx((12 / 10 - 1 + 0) / 2)
    assert metric("mean_forward_return_sell", ONE_CARD) == pytest.approx(9 / 12 - 1)


def test_horizon_counts_observations_not_days():
    # horizon 2: row 0 -> 9 (fall), row 2 -> 15 (rise)
    assert metric("buy_precision", ONE_CARD, horizon=2) == pytest.approx(1 / 2)
    assert metric("mean_forward_return_buy", ONE_CARD, horizon=2) == pytest.approx(
        ((9 / 10 - 1) + (15 / 9 - 1)) / 2
    )
    gap = frame([("a", 0, 10.0, "BUY"), ("a", 9, 11.0, "HOLD")])  # 9 days later, next obs
    assert metric("buy_precision", gap) == 1.0


def test_rows_without_prediction_or_other_cards_do_not_count():
    mixed = frame(
        [
            ("a", 0, 10.0, "BUY"),
            ("b", 0, 50.0, "HOLD"),
            ("a", 1, 8.0, "HOLD"),
            ("b", 1, 60.0, "SELL"),
        ]
    )
    mixed.loc[3, "predicted_price"] = np.nan
    mixed.loc[3, "signal"] = np.nan
    assert metric("buy_precision", mixed) == 0.0  # a: 10 -> 8
    assert math.isnan(metric("sell_precision", mixed))


TWO_CARDS = frame(
    [
        ("A", 0, 10.0, "BUY"),
        ("A", 1, 11.0, "HOLD"),
        ("A", 2, 12.0, "SELL"),
        ("A", 3, 11.0, "HOLD"),
        ("B", 0, 20.0, "HOLD"),
        ("B", 1, 20.0, "BUY"),
        ("B", 2, 22.0, "HOLD"),
        ("B", 3, 24.0, "SELL"),
    ]
)


def hand_strategy(fee: float) -> list[float]:
    keep = 1 - fee
    return [
        keep - 1,  # day 0: A entered
        (11 / 10 + keep) / 2 - 1,  # day 1: A held, B entered
        ((12 / 11) * keep + 22 / 20) / 2 - 1,  # day 2: A exits, B held
        (24 / 22) * keep - 1,  # day 3: B exits (A flat: not active)
    ]


@pytest.mark.parametrize("fee", [0.0, 0.01])
def test_strategy_by_hand(fee):
    daily = np.array(hand_strategy(fee))
    equity = np.cumprod(1 + daily)
    assert metric("strategy_total_return", TWO_CARDS, fee_pct=fee) == pytest.approx(equity[-1] - 1)
    sharpe = daily.mean() / daily.std(ddof=1) * math.sqrt(365)
    assert metric("strategy_sharpe", TWO_CARDS, fee_pct=fee) == pytest.approx(sharpe)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    assert metric("strategy_max_drawdown", TWO_CARDS, fee_pct=fee) == pytest.approx(
        max(1 - equity / peak)
    )
    assert metric("turnover", TWO_CARDS, fee_pct=fee) == pytest.approx(4 / 6)


def test_buy_and_hold_by_hand():
    run = backtest(TWO_CARDS)
    np.testing.assert_allclose(
        run.buy_and_hold_returns,
        [0.0, (11 / 10 + 1) / 2 - 1, (12 / 11 + 22 / 20) / 2 - 1, (11 / 12 + 24 / 22) / 2 - 1],
    )


def test_invalid_parameters_are_rejected():
    from pokewatch_core import ConfigError

    with pytest.raises(ConfigError, match="horizon"):
        get_plugins().metrics.get("buy_precision").from_params({"horizon": 0})
    with pytest.raises(ConfigError, match="fee_pct"):
        get_plugins().metrics.get("strategy_sharpe").from_params({"fee_pct": 1.5})


QUALITY = ["buy_precision", "sell_precision", "buy_recall", "sell_recall"]


@settings(max_examples=40, deadline=None)
@given(panels(max_cards=4, max_days=20), st.integers(1, 3))
def test_precision_and_recall_are_shares(data, horizon):
    result = evaluate("baseline_moving_average", data, params={"horizon": horizon})
    for name in QUALITY:
        value = result.metrics[name]
        assert math.isnan(value) or 0 <= value <= 1, name


@settings(max_examples=30, deadline=None)
@given(panels(max_cards=3, max_days=15))
def test_a_policy_that_never_signals_gives_nan_precision(data):
    # always HOLD: prices lie in [0.01, 1000], so market / fair > 1e-6 (a buy threshold of 1
    # or more is refused: it can never be reached)
    huge = {"buy_threshold_pct": 0.999999, "sell_threshold_pct": 1e12}
    result = evaluate("baseline_moving_average", data, params=huge)
    assert math.isnan(result.metrics["buy_precision"])
    assert math.isnan(result.metrics["sell_precision"])
    total = result.metrics["strategy_total_return"]
    # no position is ever taken: nothing earned, or undefined when no row has a signal
    assert total == 0.0 or (math.isnan(total) and result.metrics["dataset_size"] == 0)


@settings(max_examples=40, deadline=None)
@given(panels(max_cards=4, max_days=20), st.floats(0, 0.2), st.floats(0, 0.2))
def test_fees_only_lower_the_strategy_return(data, fee_a, fee_b):
    low, high = sorted((fee_a, fee_b))
    result = evaluate(
        "baseline_moving_average",
        data,
        params={"buy_threshold_pct": 0.02, "sell_threshold_pct": 0.02},
    )
    cheap = metric("strategy_total_return", result.frame, fee_pct=low)
    dear = metric("strategy_total_return", result.frame, fee_pct=high)
    if math.isnan(cheap):  # no signalled row at all
        assert math.isnan(dear)
    else:
        assert dear <= cheap + 1e-12 * max(1.0, abs(cheap))


def monthly_panel() -> pd.DataFrame:
    """Two cards priced on the first of each month for a year, with BUY/SELL signals."""
    rng = np.random.default_rng(7)
    months = pd.date_range("2024-01-01", periods=12, freq="MS")
    rows = []
    for card in ("a", "b"):
        price = 10.0
        for i, month in enumerate(months):
            price *= float(np.exp(rng.normal(0.01, 0.08)))
            signal = CATS[(i + (card == "b")) % 3]
            rows.append((card, month, round(price, 2), signal))
    out = pd.DataFrame(rows, columns=["card_id", "date", "market_price", "signal"])
    out["predicted_price"] = out["market_price"]
    out["signal"] = pd.Categorical(out["signal"], categories=CATS)
    return out


def independent_strategy_returns(data: pd.DataFrame) -> np.ndarray:
    """The long-only strategy, one loop over months: a card held coming into a month earns
    its price change; an entry on BUY is active that month (growth 1)."""
    data = data.sort_values(["card_id", "date"])
    returns = []
    for month, rows in data.groupby("date", sort=True):
        growth = []
        for card, price, signal in zip(rows.card_id, rows.market_price, rows.signal, strict=True):
            before = data[(data.card_id == card) & (data.date < month)]
            held = 0
            for s in before["signal"]:
                held = 1 if s == "BUY" else 0 if s == "SELL" else held
            if held:
                previous = before["market_price"].iloc[-1]
                growth.append(price / previous)
            elif signal == "BUY":
                growth.append(1.0)
        returns.append(np.mean(growth) - 1 if growth else 0.0)
    return np.array(returns)


def test_sharpe_of_a_monthly_panel_is_annualised_by_twelve():
    data = monthly_panel()
    r = independent_strategy_returns(data)
    expected = r.mean() / r.std(ddof=1) * math.sqrt(12)
    assert metric("strategy_sharpe", data) == pytest.approx(expected, rel=1e-9)
    assert metric("strategy_sharpe", data, periods_per_year=365) == pytest.approx(
        r.mean() / r.std(ddof=1) * math.sqrt(365), rel=1e-9
    )


@pytest.mark.parametrize(("freq", "periods"), [("D", 365), ("W-MON", 52), ("MS", 12), ("QS", 4)])
def test_periods_per_year_follow_the_data_and_are_logged(freq, periods):
    dates = pd.date_range("2023-01-01", periods=30, freq=freq)
    data = pd.DataFrame(
        {"card_id": "a", "date": dates, "market_price": np.linspace(10, 20, len(dates))}
    )
    result = evaluate("baseline_moving_average", data, metrics=["strategy_sharpe"])
    # inferred: logged apart from the parameters, which keep what the user gave (nothing)
    assert result.params[INFERRED_PPY] == periods
    assert result.inferred == {"strategy_sharpe": {"periods_per_year": periods}}
    assert result.params["periods_per_year"] is None
    given_ = evaluate(
        "baseline_moving_average", data, metrics=["strategy_sharpe"], params={"periods_per_year": 6}
    )
    assert given_.params["periods_per_year"] == 6
    assert INFERRED_PPY not in given_.params and not given_.inferred


@settings(max_examples=30, deadline=None)
@given(data=panels(max_cards=5, max_days=20), size=st.integers(1, 12))
def test_card_aligned_chunks_give_the_same_figures(data, size):
    """The signal analyses walk the rows in chunks of whole cards: any chunk size gives the
    same numbers as one pass over all rows (shuffled input included)."""
    from pokewatch_core.data import price_index

    result = evaluate("baseline_moving_average", data, metrics=["rmse"])
    frame = result.frame.copy()  # a fresh frame: nothing reused between the two passes
    whole = (signal_quality(frame), backtest(frame))
    original = price_index.CHUNK_ROWS
    try:
        price_index.CHUNK_ROWS = size
        chunked = (signal_quality(frame.copy()), backtest(frame.copy()))
    finally:
        price_index.CHUNK_ROWS = original
    for a, b in zip(whole[0].__dict__.values(), chunked[0].__dict__.values(), strict=True):
        assert a == pytest.approx(b, rel=1e-12, nan_ok=True)
    for name in ("total_return", "sharpe", "max_drawdown", "turnover", "periods_per_year"):
        assert getattr(whole[1], name) == pytest.approx(
            getattr(chunked[1], name), rel=1e-12, nan_ok=True
        )


@settings(max_examples=30, deadline=None)
@given(data=panels(max_cards=6, max_days=20), seed=st.integers(0, 2**16))
def test_analysis_states_of_card_disjoint_pieces_merge_into_the_whole(data, seed):
    """Split an evaluation frame's cards in two at random: the merged states of the pieces
    give the figures of the whole (the law a partitioned engine relies on)."""
    from pokewatch_core.analysis import by_card, overview, quality, strategy

    frame = evaluate("baseline_moving_average", data, metrics=["rmse"]).frame
    cards = frame["card_id"].unique()
    pick = np.random.default_rng(seed).random(len(cards)) < 0.5
    one = frame["card_id"].isin(cards[pick]).to_numpy()
    a, b = frame.loc[one].copy(), frame.loc[~one].copy()
    for make in (quality.quality_state, strategy.strategy_state, by_card.card_state):
        merged = make(a).merge(make(b)).finalize()
        whole = make(frame).finalize()
        if isinstance(whole, pd.DataFrame):
            pd.testing.assert_frame_equal(merged, whole, check_dtype=False, rtol=1e-12)
            continue
        for name in whole.__dataclass_fields__:
            x, y = getattr(whole, name), getattr(merged, name)
            if isinstance(x, float):
                assert y == pytest.approx(x, rel=1e-12, nan_ok=True), name
        if isinstance(whole, strategy.Backtest):
            assert (merged.dates == whole.dates).all()
            np.testing.assert_allclose(merged.strategy_returns, whole.strategy_returns, rtol=1e-12)
            for name in ("total_return", "sharpe", "max_drawdown", "turnover"):
                assert getattr(merged, name) == pytest.approx(
                    getattr(whole, name), rel=1e-9, nan_ok=True
                )
    state = overview.overview_state
    assert state(a, None).merge(state(b, None)) == state(frame, None)


def test_periods_per_year_follow_the_return_series_not_each_card():
    # seven cards, each weekly but on a different weekday: the strategy returns are daily
    rows = [
        (f"c{k}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=k + 7 * w), 10.0 + w + k)
        for k in range(7)
        for w in range(20)
    ]
    staggered = pd.DataFrame(rows, columns=["card_id", "date", "market_price"])
    result = evaluate("baseline_moving_average", staggered, metrics=["strategy_sharpe"])
    assert result.params[INFERRED_PPY] == 365
    every_other = pd.DataFrame(
        {
            "card_id": "a",
            "date": pd.date_range("2024-01-01", periods=40, freq="2D"),
            "market_price": np.linspace(10, 20, 40),
        }
    )
    result = evaluate("baseline_moving_average", every_other, metrics=["strategy_sharpe"])
    assert result.params[INFERRED_PPY] == pytest.approx(182.5)


def test_the_summarys_signal_block_shows_what_the_metrics_table_does():
    """Before: with -p horizon=5 the block said precision 0.161 (horizon 1) under a table
    saying 0.218, and with -p periods_per_year=252 it gave a second Sharpe ratio."""
    from pokewatch_core import evaluate
    from pokewatch_core.evaluation.summary import format_value, signal_quality_section

    panel = make_panel(cards=6, days=60, seed=4)
    params = {"horizon": 5, "periods_per_year": 252}
    result = evaluate("baseline_moving_average", panel, params=params)
    text = signal_quality_section(result)
    assert "(5 observations ahead;" in text
    assert f"BUY:  precision {result.metrics['buy_precision']:.3f}," in text
    assert f"SELL: precision {result.metrics['sell_precision']:.3f}," in text
    assert f"Sharpe {format_value(result.metrics['strategy_sharpe'])} (252 periods a year" in text
    one = evaluate("baseline_moving_average", panel)
    assert result.metrics["buy_precision"] != one.metrics["buy_precision"]  # it can tell
