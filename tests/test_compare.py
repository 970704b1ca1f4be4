"""`pokewatch compare` against a temporary store with several runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import all_runs, make_panel


@pytest.fixture
def three_runs(run_cli, store, tmp_path):
    path = tmp_path / "panel.parquet"
    make_panel(cards=6, days=40, seed=8, nan_rate=0.03).to_parquet(path)
    for window in (1, 3, 8):
        result = run_cli(
            "train",
            "--data-path",
            str(path),
            "--tracking-uri",
            store,
            "-p",
            f"window_size={window}",
            "--run-name",
            f"ma{window}",
        )
        assert result.exit_code == 0, result.stderr
    runs = {r.info.run_name: r for r in all_runs(store)}
    return store, runs


def test_ranks_by_rmse_ascending_by_default(run_cli, three_runs):
    store, runs = three_runs
    result = run_cli("compare", "--tracking-uri", store, "--json")
    assert result.exit_code == 0, result.stderr
    ranked = json.loads(result.stdout)["runs"]
    expected = sorted(runs.values(), key=lambda r: r.data.metrics["rmse"])
    assert [r["run_id"] for r in ranked] == [r.info.run_id for r in expected]
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    assert ranked[0]["metrics"]["rmse"] == expected[0].data.metrics["rmse"]


def test_order_limit_and_chosen_metrics(run_cli, three_runs):
    store, runs = three_runs
    result = run_cli(
        "compare",
        "--tracking-uri",
        store,
        "--metric",
        "rmse",
        "--metric",
        "mape",
        "--descending",
        "--limit",
        "2",
        "--json",
    )
    data = json.loads(result.stdout)
    worst_first = sorted(runs.values(), key=lambda r: -r.data.metrics["rmse"])[:2]
    assert [r["run_id"] for r in data["runs"]] == [r.info.run_id for r in worst_first]
    assert data["metrics"] == ["rmse", "mape"]
    assert set(data["runs"][0]["metrics"]) == {"rmse", "mape"}


def test_table_shows_names_models_and_the_varying_params(run_cli, three_runs):
    store, _ = three_runs
    result = run_cli("compare", "--tracking-uri", store)
    assert result.exit_code == 0
    header = result.stdout.splitlines()[1]
    for column in ("run_name", "model", "policy", "window_size", "rmse", "strategy_total_return"):
        assert column in header
    assert "buy_threshold_pct" not in header  # the same in every run
    assert {"ma1", "ma3", "ma8"} <= set(result.stdout.split())


def test_side_by_side_marks_differences(run_cli, three_runs):
    store, runs = three_runs
    ids = [runs["ma1"].info.run_id, runs["ma3"].info.run_id]
    data = json.loads(run_cli("compare", *ids, "--tracking-uri", store, "--json").stdout)
    params = {p["name"]: p for p in data["params"]}
    assert params["window_size"]["values"] == ["1", "3"] and params["window_size"]["differs"]
    assert not params["buy_threshold_pct"]["differs"]
    metrics = {m["name"]: m for m in data["metrics"]}
    assert metrics["rmse"]["values"] == [runs[n].data.metrics["rmse"] for n in ("ma1", "ma3")]
    assert (
        not metrics["dataset_size"]["differs"]
        or runs["ma1"].data.metrics["dataset_size"] != (runs["ma3"].data.metrics["dataset_size"])
    )
    text = run_cli("compare", *ids, "--tracking-uri", store).stdout
    window_line = next(line for line in text.splitlines() if "param.window_size" in line)
    assert window_line.startswith("*")
    policy_line = next(line for line in text.splitlines() if "param.policy" in line)
    assert not policy_line.startswith("*")


def test_unknown_experiment_and_run_are_usage_errors(run_cli, three_runs):
    store, _ = three_runs
    result = run_cli("compare", "--tracking-uri", store, "--experiment-name", "nope")
    assert result.exit_code == 2 and "no experiment named 'nope'" in result.stderr
    result = run_cli("compare", "0123456789abcdef0123456789abcdef", "--tracking-uri", store)
    assert result.exit_code == 2 and "no run" in result.stderr
