"""evaluate(): the frame, test_start semantics, parameter routing, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch_core import ConfigError, DataError, evaluate
from tests.conftest import make_panel, panels
from tests.reference import metrics as reference_metrics
from tests.reference import moving_average, threshold_signals


def test_frame_keeps_input_order_and_carried_columns():
    data = make_panel(cards=4, days=12, seed=3, nan_rate=0.1, gap_rate=0.2)
    data["rarity"] = "Common"
    result = evaluate("baseline_moving_average", data)
    frame = result.frame
    assert list(frame.columns) == [
        "card_id",
        "date",
        "market_price",
        "predicted_price",
        "signal",
        "rarity",
    ]
    assert frame["card_id"].tolist() == data["card_id"].tolist()
    assert frame["date"].tolist() == data["date"].tolist()
    np.testing.assert_allclose(frame["predicted_price"], moving_average(data))


def test_metrics_equal_an_independent_computation_end_to_end():
    data = make_panel(cards=6, days=30, seed=11, nan_rate=0.05, gap_rate=0.1)
    result = evaluate("baseline_moving_average", data)
    fair = moving_average(data)
    signals = threshold_signals(data["market_price"], fair)
    expected = reference_metrics(
        data.assign(predicted_price=fair, signal=pd.Categorical(signals, ["BUY", "SELL", "HOLD"]))
    )
    assert set(expected) <= set(result.metrics)
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, rel=1e-12), name


def test_test_start_scores_only_later_rows_with_growing_history():
    data = make_panel(cards=3, days=20, seed=5)
    result = evaluate("baseline_moving_average", data, test_start="2025-01-11")
    frame = result.frame
    in_test = frame["date"] >= pd.Timestamp("2025-01-11")
    assert frame.loc[~in_test, "predicted_price"].isna().all()
    assert frame.loc[~in_test, "signal"].isna().all()
    # test rows still use the history up to the day before, including earlier test days
    np.testing.assert_allclose(
        frame.loc[in_test, "predicted_price"], moving_average(data)[in_test.to_numpy()]
    )
    assert result.metrics["dataset_size"] == in_test.sum()
    assert result.metrics["coverage_rate"] == pytest.approx(100.0)
    assert result.params["test_start"] == "2025-01-11"


def test_test_start_after_all_data_is_an_error():
    with pytest.raises(DataError, match="no rows on or after"):
        evaluate("baseline_moving_average", make_panel(), test_start="2030-01-01")


def test_params_are_routed_to_the_component_that_declares_them():
    result = evaluate(
        "baseline_moving_average",
        make_panel(),
        params={"window_size": "5", "policy.buy_threshold_pct": "0.2"},
    )
    assert result.model_params["window_size"] == 5
    assert result.policy_params["buy_threshold_pct"] == 0.2
    assert result.params["model_type"] == "baseline_moving_average"
    assert result.params["policy"] == "threshold"


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown parameter 'windw'.*window_size"):
        evaluate("baseline_moving_average", make_panel(), params={"windw": 3})


def test_unknown_model_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown model 'nope'.*baseline_moving_average"):
        evaluate("nope", make_panel())


def test_metric_subset_and_instances():
    from pokewatch_plugins.baseline import BaselineMovingAverage

    result = evaluate(BaselineMovingAverage(window_size=2), make_panel(), metrics=["rmse"])
    assert list(result.metrics) == ["rmse"]
    assert result.model_params["window_size"] == 2


def test_accepts_a_path_and_mapped_columns(tmp_path):
    data = make_panel().rename(columns={"card_id": "unique_id", "date": "ds", "market_price": "y"})
    path = tmp_path / "nixtla.csv"
    data.to_csv(path, index=False)
    from pokewatch_core import load_prices

    table = load_prices(path, id_col="unique_id", date_col="ds", price_col="y")
    result = evaluate("baseline_moving_average", table)
    assert result.metrics["dataset_size"] > 0


@settings(max_examples=40, deadline=None)
@given(panels(max_cards=5, max_days=20), st.integers(1, 4))
def test_fast_path_equals_pandas_reference_for_every_metric(frame, window):
    """The vectorised evaluation equals a straightforward pandas computation, on ragged panels
    with gaps, NaN prices and shuffled rows, for every default metric."""
    result = evaluate("baseline_moving_average", frame, params={"window_size": window})
    fair = moving_average(frame, window)
    signals = pd.Categorical(
        threshold_signals(frame["market_price"], fair), ["BUY", "SELL", "HOLD"]
    )
    expected = reference_metrics(frame.assign(predicted_price=fair, signal=signals))
    for name, value in expected.items():
        got = result.metrics[name]
        assert (np.isnan(value) and np.isnan(got)) or got == pytest.approx(value, rel=1e-9), name


@settings(max_examples=25, deadline=None)
@given(panels(max_cards=4, max_days=12))
def test_sorted_and_shuffled_inputs_agree(frame):
    ordered = frame.sort_values(["card_id", "date"]).reset_index()
    shuffled = evaluate("baseline_moving_average", frame).frame
    in_order = evaluate("baseline_moving_average", ordered.drop(columns="index")).frame
    back = in_order.set_index(ordered["index"]).sort_index()
    np.testing.assert_array_equal(back["predicted_price"], shuffled["predicted_price"])


def test_the_error_histogram_shows_the_bulk_not_one_spike():
    """Before: one card's huge errors put every other row in one bar of an axis from -120 to
    +45. The axis spans the 1st-99th percentile and the title counts the rows left out."""
    from pokewatch_core.evaluation.plots import evaluation_figures

    panel = make_panel(cards=30, days=40, seed=5)
    spiky = panel["card_id"] == panel["card_id"].iloc[0]
    panel.loc[spiky, "market_price"] *= np.where(np.arange(spiky.sum()) % 2, 50.0, 1.0)
    result = evaluate("baseline_moving_average", panel)
    ax = evaluation_figures(result)["plots/error_distribution.png"].axes[0]
    errors = (result.frame["predicted_price"] - result.frame["market_price"]).dropna()
    low, high = np.percentile(errors, [1, 99])
    edges = [p.get_x() for p in ax.patches] + [ax.patches[-1].get_x() + ax.patches[-1].get_width()]
    assert low - 1e-9 <= min(edges) and max(edges) <= high + 1e-9
    assert "rows outside the 1st-99th percentile not shown" in ax.get_title()
    assert "$" not in ax.get_xlabel()


def _edge_panel() -> pd.DataFrame:
    """The embedded sample with a card of one row and a card whose price never moves, on
    dates of the sample."""
    from pokewatch_core import embedded_sample_path, load_prices

    sample = load_prices(embedded_sample_path())[["card_id", "date", "market_price"]]
    dates = sorted(sample["date"].unique())
    one = pd.DataFrame({"card_id": ["one_row"], "date": [dates[-10]], "market_price": [3.5]})
    flat = pd.DataFrame({"card_id": "flat", "date": dates[-30:], "market_price": 12.0})
    return pd.concat([sample, one, flat], ignore_index=True)


@pytest.mark.parametrize(
    "options",
    [{}, {"test_start": "2025-10-01"}, {"horizon": 3, "windows": 2, "step": 3}],
    ids=["one-step", "test-start", "backtest"],
)
def test_a_successful_evaluation_raises_no_runtime_warning(options):
    """NaN is the honest answer where a figure is undefined (a card of one row, a price
    that never moves, a card with no row after the test start): it comes without numpy's
    "invalid value" / "divide by zero" warnings."""
    import warnings

    from pokewatch_core import embedded_sample_path

    for data in (embedded_sample_path(), _edge_panel()):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            result = evaluate("baseline_moving_average", data, **options)
        assert np.isfinite(result.metrics["rmse"])


@pytest.mark.slow  # a logged train: CI's slow run has it
def test_a_successful_train_warns_nothing(run_cli, store, tmp_path):
    """`pokewatch train` on the edge panel, logging included (summary, plots, tables,
    model): no RuntimeWarning, and nothing on stderr."""
    import warnings

    _edge_panel().to_parquet(tmp_path / "edge.parquet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli("train", "--data-path", str(tmp_path / "edge.parquet"),
                         "--tracking-uri", store, "--test-start", "2025-10-01")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert result.stderr == ""
