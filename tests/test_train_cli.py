"""End to end: `pokewatch train` against a temporary SQLite store, read back with MlflowClient."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pokewatch_core import embedded_sample_path, load_prices
from tests.conftest import RUN_ARTIFACTS, all_runs, artifact_paths, make_panel

METRICS = {"rmse", "mape", "dataset_size", "coverage_rate", "buy_rate", "sell_rate", "hold_rate"}
SIGNAL_METRICS = {
    "buy_precision",
    "sell_precision",
    "buy_recall",
    "sell_recall",
    "buy_lift",
    "sell_lift",
    "mean_forward_return_buy",
    "mean_forward_return_sell",
    "strategy_total_return",
    "strategy_sharpe",
    "strategy_max_drawdown",
    "turnover",
}


def test_train_on_the_embedded_sample_logs_a_complete_run(run_cli, store):
    from mlflow.tracking import MlflowClient

    result = run_cli("train", "--tracking-uri", store, "--run-name", "e2e", "--tag", "team=quant")
    assert result.exit_code == 0, result.stderr
    runs = all_runs(store)
    assert len(runs) == 1
    run = runs[0]
    client = MlflowClient(tracking_uri=store)
    assert client.get_experiment(run.info.experiment_id).name == "pokewatch_baseline"
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "e2e"
    params = run.data.params
    assert params["model_type"] == "baseline_moving_average"
    assert params["window_size"] == "3"
    assert params["buy_threshold_pct"] == "0.1"
    assert params["sell_threshold_pct"] == "0.15"
    assert params["policy"] == "threshold"
    assert set(run.data.metrics) >= METRICS
    assert artifact_paths(client, run.info.run_id) >= RUN_ARTIFACTS
    assert run.data.tags["team"] == "quant"
    assert run.data.tags["pokewatch.version"]
    assert "pokewatch.plugin.pokewatch" in run.data.tags
    assert len(run.inputs.dataset_inputs) == 1
    # the terminal summary shows the metrics and the run id
    assert run.info.run_id in result.stdout
    assert "rmse" in result.stdout and "mlflow ui --backend-store-uri" in result.stdout
    summary = client.download_artifacts(run.info.run_id, "summary/evaluation_summary.txt")
    text = Path(summary).read_text()
    assert "baseline_moving_average" in text and "rmse" in text
    assert "Signal quality" in text and "buy and hold" in text
    assert set(run.data.metrics) >= SIGNAL_METRICS
    by_card = pd.read_csv(client.download_artifacts(run.info.run_id, "tables/metrics_by_card.csv"))
    assert list(by_card.columns) == [
        "card_id",
        "scored_rows",
        "rmse",
        "mape",
        "buy",
        "sell",
        "hold",
    ]
    sample = load_prices(embedded_sample_path())
    assert len(by_card) == sample["card_id"].nunique()
    assert by_card["scored_rows"].sum() == run.data.metrics["dataset_size"]
    predictions = pd.read_parquet(
        client.download_artifacts(run.info.run_id, "tables/predictions.parquet")
    )
    assert len(predictions) == len(sample) and "predicted_price" in predictions.columns
    assert "Signal quality" in result.stdout


def test_logged_metrics_equal_the_library_result(run_cli, store, tmp_path):
    from pokewatch_core import evaluate

    data = make_panel(cards=5, days=25, seed=2, nan_rate=0.05)
    path = tmp_path / "panel.parquet"
    data.to_parquet(path)
    result = run_cli(
        "train",
        "--data-path",
        str(path),
        "--tracking-uri",
        store,
        "-p",
        "window_size=4",
        "--experiment-name",
        "custom",
    )
    assert result.exit_code == 0, result.stderr
    (run,) = all_runs(store)
    expected = evaluate("baseline_moving_average", data, params={"window_size": 4}).metrics
    for name, value in expected.items():
        assert run.data.metrics[name] == pytest.approx(value, rel=1e-12)
    assert run.data.params["window_size"] == "4"


def test_tracking_uri_from_dotenv(run_cli, store, tmp_path, monkeypatch, empty_store_file):
    monkeypatch.delenv("UV", raising=False)  # not started by uv: a plain mlflow command
    db = tmp_path / "from_dotenv.db"
    shutil.copyfile(empty_store_file, db)
    (tmp_path / ".env").write_text(f"MLFLOW_TRACKING_URI=sqlite:///{db}\n")
    result = run_cli("train", "--data-path", str(_small(tmp_path)))
    assert result.exit_code == 0, result.stderr
    assert len(all_runs(f"sqlite:///{db}")) == 1
    assert f"Open the MLflow UI: mlflow ui --backend-store-uri sqlite:///{db}" in result.stdout


def test_environment_variable_beats_dotenv(run_cli, store, tmp_path, monkeypatch, empty_store_file):
    env_db, dotenv_db = tmp_path / "env.db", tmp_path / "dotenv.db"
    shutil.copyfile(empty_store_file, env_db)
    (tmp_path / ".env").write_text(f"MLFLOW_TRACKING_URI=sqlite:///{dotenv_db}\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{env_db}")
    assert run_cli("train", "--data-path", str(_small(tmp_path))).exit_code == 0
    assert len(all_runs(f"sqlite:///{env_db}")) == 1
    assert not dotenv_db.exists()


def test_failure_after_the_run_started_ends_it_failed(run_cli, store, monkeypatch):
    import pokewatch_core.evaluation.plots as plots

    def broken(result):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "evaluation_figures", broken)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(_small(Path.cwd())))
    assert result.exit_code == 1
    assert "disk full" in result.stderr and "Traceback" not in result.stderr
    (run,) = all_runs(store)
    assert run.info.status == "FAILED"


def test_experiment_created_by_another_process_meanwhile_still_gets_the_run(
    run_cli, store, tmp_path, monkeypatch
):
    """The race of concurrent trainings: the name is free at lookup, taken at create."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=store).create_experiment("raced")
    original = SqlAlchemyStore.get_experiment_by_name
    lookups = []

    def first_lookup_misses(self, name):
        lookups.append(name)
        return None if len(lookups) == 1 else original(self, name)

    monkeypatch.setattr(SqlAlchemyStore, "get_experiment_by_name", first_lookup_misses)
    result = run_cli(
        "train",
        "--tracking-uri",
        store,
        "--data-path",
        str(_small(tmp_path)),
        "--experiment-name",
        "raced",
    )
    monkeypatch.undo()
    assert result.exit_code == 0, result.stderr
    assert len(lookups) >= 2  # the race was taken
    client = MlflowClient(tracking_uri=store)
    (run,) = all_runs(store)
    assert run.info.experiment_id == client.get_experiment_by_name("raced").experiment_id


def test_deleted_experiment_is_a_usage_error_without_a_run(run_cli, store, tmp_path):
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    client.delete_experiment(client.create_experiment("gone"))
    data = str(_small(tmp_path))
    result = run_cli(
        "train", "--tracking-uri", store, "--data-path", data, "--experiment-name", "gone"
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'gone' is deleted" in lines[0]
    assert (
        client.search_runs(
            [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
        )
        == []
    )


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_console_script_in_a_real_process(tmp_path, empty_store_file):
    path = _small(tmp_path)
    uri = f"sqlite:///{tmp_path / 'proc.db'}"
    shutil.copyfile(empty_store_file, tmp_path / "proc.db")
    exe = Path(sys.executable).with_name("pokewatch")
    proc = subprocess.run(
        [
            str(exe),
            "train",
            "--data_path",
            str(path),
            "--experiment_name",
            "proc",
            "--run_name",
            "p1",
            "--tracking-uri",
            uri,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = all_runs(uri)
    assert run.info.run_name == "p1"


def _small(directory: Path) -> Path:
    path = directory / "small.csv"
    make_panel(cards=3, days=8, seed=1).to_csv(path, index=False)
    return path


def test_nixtla_style_columns(run_cli, store, tmp_path, monkeypatch):
    monkeypatch.setenv("UV", "/usr/bin/uv")  # as `uv run pokewatch train` sets it
    data = make_panel().rename(columns={"card_id": "unique_id", "date": "ds", "market_price": "y"})
    path = tmp_path / "nixtla.parquet"
    data.to_parquet(path)
    result = run_cli(
        "train",
        "--data-path",
        str(path),
        "--tracking-uri",
        store,
        "--id-col",
        "unique_id",
        "--date-col",
        "ds",
        "--price-col",
        "y",
        "--metric",
        "rmse",
        "--metric",
        "mape",
    )
    assert result.exit_code == 0, result.stderr
    (run,) = all_runs(store)
    assert set(run.data.metrics) == {"rmse", "mape"} and pd.notna(run.data.metrics["rmse"])
    # no signal-quality section for a run that computed none of its figures
    assert "Signal quality" not in result.stdout and "Sharpe" not in result.stdout
    # under uv, the printed hint is a command that works when pasted
    assert f"Open the MLflow UI: uv run mlflow ui --backend-store-uri {store}" in result.stdout
