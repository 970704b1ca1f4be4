"""``mlflow.models.evaluate`` with the ``pokewatch`` evaluator, in a fresh environment where
pokewatch is installed as a distribution: a PokeWatch-logged model and a plain function give
the metrics of ``pokewatch_core.evaluate`` with the equivalent model; ``mlflow_metrics()`` works
with MLflow's default evaluator."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pokewatch_core as pw
from tests.conftest import artifact_paths

SCRIPT = Path(__file__).with_name("scripts") / "mlflow_evaluate.py"


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory) -> Path:
    """A new virtual environment whose only packages are this project's installed ones
    (linked with a .pth file, so nothing is downloaded): entry points come from the installed
    pokewatch distribution."""
    from tests.conftest import linked_venv

    env = linked_venv(tmp_path_factory.mktemp("evaluator-env") / "venv")
    return env


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.fixture(scope="module")
def evaluated(fresh_env, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluator")
    uri = f"sqlite:///{tmp / 'store.db'}"
    data = pw.load_prices(pw.embedded_sample_path())[["card_id", "date", "market_price"]]
    data = data[data["card_id"].isin(data["card_id"].unique()[:40])].reset_index(drop=True)
    path = tmp / "data.parquet"
    data.to_parquet(path)
    trained = pw.evaluate("baseline_moving_average", data.copy())
    logged = pw.log_evaluation(trained, tracking_uri=uri, experiment_name="evaluator")
    env = {**os.environ, "MLFLOW_LOGGING_LEVEL": "ERROR"}
    proc = subprocess.run(
        [str(fresh_env / "bin" / "python"), str(SCRIPT), uri, logged.model_uri, str(path)],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), data, trained, uri


@pytest.mark.slow
def test_a_pokewatch_logged_model_scores_like_evaluate(evaluated):
    out, _, trained, _ = evaluated
    got = out["logged_model"]["metrics"]
    assert set(trained.metrics) <= set(got)
    for name, value in trained.metrics.items():
        assert close(got[name], value), (name, got[name], value)


@pytest.mark.slow
def test_a_plain_function_scores_like_the_equivalent_model(evaluated):
    out, data, _, _ = evaluated
    naive = pw.evaluate(
        "baseline_moving_average",
        data.copy(),
        params={"window_size": 1, "sell_threshold_pct": 0.2},
    )
    got = out["function"]["metrics"]
    for name, value in naive.metrics.items():
        assert close(got[name], value), (name, got[name], value)


@pytest.mark.slow
def test_metrics_plots_and_tables_are_logged_into_the_run(evaluated):
    from mlflow.tracking import MlflowClient

    out, _, trained, uri = evaluated
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(out["logged_model"]["run_id"])
    for name, value in trained.metrics.items():
        assert close(run.data.metrics[name], value) or (
            np.isnan(value) and name not in run.data.metrics
        ), name
    paths = artifact_paths(client, run.info.run_id)
    assert {
        "plots/error_distribution.png",
        "plots/strategy_equity_curve.png",
        "summary/evaluation_summary.txt",
        "tables/metrics_by_card.csv",
        "tables/predictions.parquet",
    } <= paths
    assert "strategy_equity_curve" in out["artifacts"]


@pytest.mark.slow
def test_mlflow_metrics_with_the_default_evaluator(evaluated):
    out, data, _, _ = evaluated
    naive = pw.evaluate("baseline_moving_average", data.copy(), params={"window_size": 1})
    complete = naive.frame.dropna(subset=["market_price", "predicted_price"])
    assert out["default_evaluator"]["rows"] == len(complete)
    expected = pw.score_predictions(
        complete[["card_id", "date", "market_price"]].reset_index(drop=True),
        complete["predicted_price"].to_numpy(),
    ).metrics
    got = out["default_evaluator"]["metrics"]
    for name in ("rmse", "mape", "buy_rate", "strategy_sharpe"):
        assert close(got[name], expected[name]), (name, got[name], expected[name])
    assert "mean_absolute_error" in got  # MLflow's own metrics are still there


class _Dataset:
    """What MLflow hands an evaluator: features, labels and a name."""

    def __init__(self, frame):
        self.features_data = frame.drop(columns="market_price")
        self.labels_data = frame["market_price"].to_numpy()
        self.name = "probe"
        self.predictions_data = None


class _Exploding:
    def predict(self, features):
        raise AssertionError("the model must not be called with bad data or options")


@pytest.mark.parametrize(
    ("config", "edit", "needle"),
    [
        ({"polcy": 1}, None, "unknown parameter 'polcy'"),
        ({"metrics": ["nope"]}, None, "unknown metric 'nope'"),
        ({}, lambda f: f.drop(columns="card_id"), "'card_id'"),
        ({}, lambda f: f.assign(market_price=-f["market_price"]), "negative price"),
    ],
)
def test_bad_data_or_options_fail_before_the_model_is_called(config, edit, needle):
    from pokewatch_core.tracking.evaluator import PokeWatchEvaluator

    frame = pw.generate_prices(cards=3, days=5, seed=1)[["card_id", "date", "market_price"]]
    frame = frame.dropna().reset_index(drop=True)
    frame = edit(frame) if edit else frame
    with pytest.raises(pw.PokeWatchError, match=needle):
        PokeWatchEvaluator().evaluate(
            model_type="pokewatch",
            dataset=_Dataset(frame),
            run_id="x",
            evaluator_config=config,
            model=_Exploding(),
        )


def test_one_metric_name_may_be_a_string():
    from pokewatch_core.tracking.evaluator import score_dataset

    frame = pw.generate_prices(cards=3, days=5, seed=1)[["card_id", "date", "market_price"]]
    frame = frame.dropna().reset_index(drop=True)
    result = score_dataset(
        frame[["card_id", "date"]],
        frame["market_price"],
        frame["market_price"] * 1.01,
        {"metrics": "rmse"},
    )
    assert list(result.metrics) == ["rmse"]


def test_a_model_returning_text_is_one_clear_data_error():
    """Before: a raw ValueError ("could not convert string to float")."""
    from pokewatch_core.tracking.evaluator import PokeWatchEvaluator

    frame = pw.generate_prices(cards=3, days=5, seed=1)[["card_id", "date", "market_price"]]
    frame = frame.dropna().reset_index(drop=True)

    class Texts:
        def predict(self, features):
            return np.array(["cheap"] * len(features))

    with pytest.raises(pw.DataError, match="predictions are not numbers \\(the first: 'cheap'\\)"):
        PokeWatchEvaluator().evaluate(
            model_type="pokewatch", dataset=_Dataset(frame), run_id="x", evaluator_config={},
            model=Texts(),
        )  # fmt: skip
