"""Backtests on the command line and in MLflow (docs/backtests.md): `pokewatch train --horizon 7
--windows 4 --step 7` logs one run a person can read (a key per horizon in the runs table, a
chart of each metric against the horizon, tables of forecasts and of metrics by cutoff, the
error-by-horizon plot, params of the cutoffs); bad backtest options are refused before any
run; `compare` says when runs scored different periods; the gate scores like with like."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from tests.conftest import all_runs, artifact_paths, make_panel

BACKTEST = ["--horizon", "7", "--windows", "4", "--step", "7"]


def _run_id(out) -> str:
    return re.search(r"Run ([0-9a-f]{32})", out.stdout)[1]


@pytest.fixture(scope="module")
def backtest_run(tmp_path_factory):
    """A store holding one `train --horizon 7 --windows 4 --step 7` run on the sample."""
    from mlflow.tracking import MlflowClient

    from tests.conftest import main_in_process

    uri = f"sqlite:///{tmp_path_factory.mktemp('backtest') / 'store.db'}"
    main_in_process("train", "--tracking-uri", uri, *BACKTEST)
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs(["1"])
    return client, run


@pytest.mark.slow  # trains and logs runs: seconds each
def test_the_run_holds_a_key_per_horizon_and_the_chart_against_the_horizon(backtest_run):
    client, run = backtest_run
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for h in range(1, 8):
        assert f"rmse_h{h}" in metrics and f"strategy_sharpe_h{h}" in metrics
    assert "rmse_h8" not in metrics
    chart = client.get_metric_history(run.info.run_id, "rmse_by_horizon")
    assert sorted(m.step for m in chart) == list(range(1, 8))
    for point in chart:
        assert point.value == pytest.approx(metrics[f"rmse_h{point.step}"], rel=1e-12)
    params = run.data.params
    assert params["horizon"] == "7" and params["cutoffs"] == "windows"
    assert params["cutoff_count"] == "4" and params["step"] == "7" and params["refit"] == "every"


@pytest.mark.slow  # trains and logs runs: seconds each
def test_the_logged_numbers_equal_an_independent_computation_from_the_forecasts(backtest_run):
    """rmse per horizon, pooled and per cutoff, recomputed here from tables/forecasts.parquet
    with numpy; the forecasts themselves recomputed from the sample's prices (the baseline's
    3-price mean on or before the cutoff)."""
    import mlflow

    from pokewatch_core.data.sample_data import embedded_sample_path

    client, run = backtest_run
    folder = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="tables", tracking_uri=client.tracking_uri
    )
    forecasts = pd.read_parquet(f"{folder}/forecasts.parquet")
    assert list(forecasts.columns) == [
        "card_id", "cutoff", "date", "horizon", "market_price", "predicted_price", "signal",
    ]  # fmt: skip
    assert sorted(forecasts["horizon"].unique()) == list(range(1, 8))
    assert ((forecasts["date"] - forecasts["cutoff"]).dt.days == forecasts["horizon"]).all()
    cutoffs = sorted(forecasts["cutoff"].unique())
    assert len(cutoffs) == 4 and all(np.diff(cutoffs) == np.timedelta64(7, "D"))

    prices = pd.read_parquet(embedded_sample_path())
    prices["date"] = pd.to_datetime(prices["date"])
    last = prices["date"].max()
    assert pd.Timestamp(cutoffs[-1]) == last - pd.Timedelta(days=7)
    sample = forecasts.sample(50, random_state=0)
    for row in sample.itertuples():
        seen = prices[(prices["card_id"] == row.card_id) & (prices["date"] <= row.cutoff)]
        seen = seen.dropna(subset=["market_price"]).sort_values("date")
        expected = seen["market_price"].tail(3).mean() if len(seen) else np.nan
        assert row.predicted_price == pytest.approx(expected, rel=1e-12, nan_ok=True)

    def rmse(rows: pd.DataFrame) -> float:
        ok = rows.dropna(subset=["market_price", "predicted_price"])
        return float(np.sqrt(((ok["predicted_price"] - ok["market_price"]) ** 2).mean()))

    metrics = run.data.metrics
    for h, rows in forecasts.groupby("horizon"):
        assert metrics[f"rmse_h{h}"] == pytest.approx(rmse(rows), rel=1e-9)
    assert metrics["rmse"] == pytest.approx(rmse(forecasts), rel=1e-9)
    by_cutoff = pd.read_csv(f"{folder}/metrics_by_cutoff.csv")
    for row in by_cutoff.itertuples():
        rows = forecasts[forecasts["cutoff"] == pd.Timestamp(row.cutoff)]
        assert row.rmse == pytest.approx(rmse(rows), rel=1e-9)
    by_horizon = pd.read_csv(f"{folder}/metrics_by_horizon.csv")
    assert list(by_horizon["horizon"]) == list(range(1, 8))
    paths = artifact_paths(client, run.info.run_id)
    assert "plots/error_by_horizon.png" in paths and "tables/predictions.parquet" in paths


@pytest.mark.slow  # trains and logs runs: seconds each
def test_train_prints_the_metrics_by_horizon(run_cli, store):
    out = run_cli("train", "--tracking-uri", store, "--metric", "rmse", "--horizon", "3")
    assert out.exit_code == 0, out.stderr
    assert "Metrics (pooled over the horizons):" in out.stdout
    assert re.search(r"rmse\s+\S+\s+\S+\s+\S+\n", out.stdout)  # h1 h2 h3 columns
    assert "cutoffs (every date)" in out.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--horizon", "0"], "--horizon must be 1 or more, got 0"),
        (["--windows", "0"], "--windows must be 1 or more"),
        (["--windows", "2", "--step", "0"], "--step must be 1 or more"),
        (["--step", "3"], "--step spaces windows: it needs --windows"),
        (["--windows", "40", "--horizon", "7"], "the data has 200 (daily, 2025-05-07..2025-11-22)"),
        (["--windows", "2", "--test-start", "2025-11-01"], "--test-start and --windows"),
        (["--input-size", "2"], "--input-size 2 is shorter than the model needs (3 periods"),
        (["--refit", "sometimes"], "--refit: expected 'every', 'once' or a number"),
    ],
)
def test_bad_backtest_options_are_one_line_exit_2_and_no_run(args, needle, run_cli, store):
    out = run_cli("train", "--tracking-uri", store, "--metric", "rmse", *args)
    assert out.exit_code == 2, out.stdout + out.stderr
    assert needle in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert all_runs(store) == []


def test_windows_that_do_not_fit_name_the_data_range(run_cli, store):
    out = run_cli("train", "--tracking-uri", store, "--metric", "rmse", "--windows", "400")
    assert out.exit_code == 2
    assert "--windows 400 of --horizon 1 spaced --step 1 need 401 periods" in out.stderr
    assert re.search(r"\(daily, 2025-05-07\.\.2025-11-22\): at most 199 windows", out.stderr)


def test_a_horizon_on_one_date_is_refused(run_cli, store, tmp_path):
    path = tmp_path / "one_day.csv"
    pd.DataFrame(
        {"card_id": ["007", "008"], "date": ["2025-01-01"] * 2, "market_price": [1.0, 2.0]}
    ).to_csv(path, index=False)
    out = run_cli("train", "--data-path", str(path), "--tracking-uri", store, "--horizon", "2")
    assert out.exit_code == 2
    assert "cannot be inferred from one date (one date, 2025-01-01)" in out.stderr
    assert all_runs(store) == []


@pytest.mark.slow  # trains and logs runs: seconds each
def test_monthly_data_counts_horizons_in_months(run_cli, store, tmp_path):
    """Cent prices on the first of each month: a horizon of 2 is two months."""
    path = tmp_path / "monthly.csv"
    months = pd.date_range("2024-01-01", periods=12, freq="MS")
    rows = [
        {"card_id": card, "date": d.date().isoformat(), "market_price": 100 + i * step}
        for card, step in (("007", 3), ("070", -2))
        for i, d in enumerate(months)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    args = ["--data-path", str(path), "--tracking-uri", store, "--metric", "rmse"]
    out = run_cli("train", *args, "--horizon", "2", "--windows", "3", "--step", "1")
    assert out.exit_code == 0, out.stderr
    assert "monthly data" in out.stdout
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(tracking_uri=store).search_runs(["1"])
    assert run.data.params["period"] == "monthly"
    assert run.data.params["last_cutoff"] == "2024-10-01"  # two months before the last date
    # a linear price: the mean of the 3 months up to the cutoff is the price a month before
    # it, so it misses the target h months ahead by (h + 1) monthly steps
    expected_h1 = np.sqrt(((3.0 * 2) ** 2 + (2.0 * 2) ** 2) / 2)
    assert run.data.metrics["rmse_h1"] == pytest.approx(expected_h1, rel=1e-12)


def _runs_of_two_setups(run_cli, store, tmp_path):
    path = tmp_path / "prices.parquet"
    make_panel(cards=4, days=40, seed=3).to_parquet(path)
    common = ["train", "--data-path", str(path), "--tracking-uri", store, "--metric", "rmse"]
    first = run_cli(*common)
    second = run_cli(*common, "--horizon", "3", "--windows", "2")
    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    return _run_id(first), _run_id(second)


@pytest.mark.slow  # trains and logs runs: seconds each
def test_compare_says_when_runs_scored_different_cutoffs(run_cli, store, tmp_path):
    one, other = _runs_of_two_setups(run_cli, store, tmp_path)
    out = run_cli("compare", "--tracking-uri", store, "--metric", "rmse")
    assert out.exit_code == 0, out.stderr
    assert "scored_on" in out.stdout and "not like for like" in out.stdout
    assert "every date, horizon 1" in out.stdout and "2 windows of horizon 3" in out.stdout
    data = json.loads(run_cli("compare", "--tracking-uri", store, "--json").stdout)
    assert data["like_for_like"] is False
    side = run_cli("compare", one, other, "--tracking-uri", store)
    assert "not like for like" in side.stdout


@pytest.mark.slow  # trains and logs runs: seconds each
def test_compare_says_nothing_for_runs_of_one_setup(run_cli, store, tmp_path):
    path = tmp_path / "prices.parquet"
    make_panel(cards=4, days=40, seed=3).to_parquet(path)
    for window in (2, 3):
        args = ["--data-path", str(path), "--tracking-uri", store, "--metric", "rmse"]
        out = run_cli("train", *args, "-p", f"window_size={window}", "--horizon", "2")
        assert out.exit_code == 0, out.stderr
    out = run_cli("compare", "--tracking-uri", store, "--metric", "rmse_h2")
    assert out.exit_code == 0, out.stderr
    assert "not like for like" not in out.stdout and "scored_on" not in out.stdout


@pytest.mark.slow  # trains, registers and gates: a few seconds
def test_the_gate_rescores_the_champion_on_the_candidates_cutoffs(run_cli, store):
    from mlflow.tracking import MlflowClient

    def train(window: int) -> str:
        out = run_cli("train", "--tracking-uri", store, *BACKTEST, "-p", f"window_size={window}",
                      "--register-model", "cards")  # fmt: skip
        assert out.exit_code == 0, out.stderr
        return _run_id(out)

    champion = train(5)
    candidate = train(3)
    out = run_cli("gate", "--candidate", candidate, "--champion", "models:/cards/1",
                  "--rule", "rmse_h7<=1.5*champion", "--tracking-uri", store, "--json")  # fmt: skip
    assert out.exit_code in (0, 3), out.stderr
    report = json.loads(out.stdout)
    rule = report["rules"][0]
    client = MlflowClient(tracking_uri=store)
    # the champion re-scored on the candidate's cutoffs is the champion's own run's figure
    assert rule["champion"] == pytest.approx(client.get_run(champion).data.metrics["rmse_h7"])
    assert rule["candidate"] == pytest.approx(client.get_run(candidate).data.metrics["rmse_h7"])


@pytest.mark.slow  # trains and logs runs: seconds each
def test_a_sweep_ranks_by_a_horizon_key(run_cli, store):
    out = run_cli("sweep", "--tracking-uri", store, "-p", "window_size=2,4", "--horizon", "3",
                  "--windows", "2", "--metric", "rmse_h3")  # fmt: skip
    assert out.exit_code == 0, out.stderr
    assert "best by rmse_h3" in out.stdout
    bad = run_cli("sweep", "--tracking-uri", store, "-p", "window_size=2,4", "--horizon", "3",
                  "--metric", "rmse_h9")  # fmt: skip
    assert bad.exit_code == 2 and "beyond the horizon 3" in bad.stderr
