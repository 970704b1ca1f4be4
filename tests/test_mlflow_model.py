"""The logged pyfunc model: round trip, no pickle, registry aliases, `mlflow models serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pokewatch_core import evaluate
from pokewatch_core.tracking import log_evaluation
from tests.conftest import free_port, make_panel
from tests.reference import threshold_signals


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return make_panel(cards=5, days=30, seed=9, nan_rate=0.05, gap_rate=0.1)


@pytest.fixture
def logged(store, panel):
    result = evaluate("baseline_moving_average", panel, params={"window_size": 4})
    return result, log_evaluation(result, tracking_uri=store, data_source="panel")


def _last_price_before(panel: pd.DataFrame, card: str, day: pd.Timestamp) -> float:
    rows = panel[(panel["card_id"] == card) & (panel["date"] < day)].dropna()
    return float(rows.sort_values("date")["market_price"].iloc[-1]) if len(rows) else np.nan


def test_round_trip_equals_the_library(logged, panel):
    import mlflow

    result, run = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    frame = result.frame.dropna(subset=["predicted_price"]).sample(25, random_state=1)
    requests = pd.DataFrame(
        {"card_id": frame["card_id"].tolist(), "date": frame["date"].dt.strftime("%Y-%m-%d")}
    )
    out = model.predict(requests)
    assert list(out.columns) == ["card_id", "date", "market_price", "fair_price", "signal"]
    np.testing.assert_allclose(out["fair_price"], frame["predicted_price"], rtol=1e-12)
    expected_market = [
        _last_price_before(panel, c, d)
        for c, d in zip(frame["card_id"], frame["date"], strict=True)
    ]
    np.testing.assert_allclose(out["market_price"], expected_market)
    assert out["signal"].astype(object).where(out["signal"].notna(), None).tolist() == (
        threshold_signals(out["market_price"], out["fair_price"])
    )


def test_missing_date_means_the_day_after_the_last_price(logged, panel):
    import mlflow

    _, run = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    out = model.predict(pd.DataFrame({"card_id": ["card_0", "card_3"]}))
    for card, row in zip(["card_0", "card_3"], out.itertuples(), strict=True):
        observed = panel[(panel["card_id"] == card)].dropna().sort_values("date")
        assert row.date == observed["date"].iloc[-1] + pd.Timedelta(days=1)
        assert row.market_price == observed["market_price"].iloc[-1]
        assert row.fair_price == pytest.approx(observed["market_price"].iloc[-4:].mean())


def test_unknown_card_and_early_date_give_missing_values(logged):
    import mlflow

    _, run = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    out = model.predict(
        pd.DataFrame({"card_id": ["nope", "card_1"], "date": ["2025-02-01", "1999-01-01"]})
    )
    assert out["fair_price"].isna().all()
    assert out["market_price"].isna().all()
    assert out["signal"].isna().all()


def test_missing_card_id_column_is_a_clear_error(logged):
    import mlflow

    _, run = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    with pytest.raises(Exception, match="card_id"):
        model.predict(pd.DataFrame({"date": ["2025-01-05"]}))


def test_no_pickle_in_the_logged_model(logged, tmp_path):
    import mlflow

    _, run = logged
    local = Path(mlflow.artifacts.download_artifacts(run.model_uri, dst_path=str(tmp_path)))
    files = [p for p in local.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"MLmodel", "pokewatch_model.json", "history.parquet"} <= names
    for path in files:
        assert path.suffix not in {".pkl", ".pickle", ".joblib", ".cloudpickle"}, path
        assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"
    mlmodel = (local / "MLmodel").read_text()
    assert "model_code_path" in mlmodel and "python_model.pkl" not in mlmodel
    requirements = (local / "requirements.txt").read_text()
    assert "pokewatch==" in requirements
    # loads with pickle deserialisation forbidden
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    try:
        assert mlflow.pyfunc.load_model(str(local)).metadata.signature is not None
    finally:
        del os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"]


def test_register_twice_moves_the_alias(run_cli, store):
    import mlflow
    from mlflow.tracking import MlflowClient

    for _ in range(2):
        result = run_cli("train", "--tracking-uri", store, "--register-model", "pokewatch_ma")
        assert result.exit_code == 0, result.stderr
    client = MlflowClient(tracking_uri=store)
    versions = sorted(int(v.version) for v in client.search_model_versions("name='pokewatch_ma'"))
    assert versions == [1, 2]
    assert str(client.get_model_version_by_alias("pokewatch_ma", "champion").version) == "2"
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model("models:/pokewatch_ma@champion")
    assert len(model.predict(pd.DataFrame({"card_id": ["sv2a_151_mew___151_165"]}))) == 1
    assert "models:/pokewatch_ma@champion" in result.stdout


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_mlflow_models_serve(run_cli, store, tmp_path):
    import mlflow

    assert run_cli("train", "--tracking-uri", store, "--register-model", "served").exit_code == 0
    port = free_port()
    mlflow_exe = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    server = subprocess.Popen(
        [
            str(mlflow_exe),
            "models",
            "serve",
            "-m",
            "models:/served@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "mlflow models serve exited"
                assert time.monotonic() < deadline, "server did not start in 120 s"
                time.sleep(0.5)
        cards = ["sv2a_151_pikachu___025_165", "sv2a_151_mew_ex___151_165", "unknown_card"]
        dates = ["2025-11-01", None, "2025-11-01"]
        answer = _post(
            f"http://127.0.0.1:{port}/invocations",
            {
                "dataframe_split": {
                    "columns": ["card_id", "date"],
                    "data": list(zip(cards, dates, strict=True)),
                }
            },
        )
        served = pd.DataFrame(answer["predictions"])
        mlflow.set_tracking_uri(store)
        local = mlflow.pyfunc.load_model("models:/served@champion").predict(
            pd.DataFrame({"card_id": cards, "date": dates})
        )
        np.testing.assert_allclose(served["fair_price"].astype(float), local["fair_price"])
        np.testing.assert_allclose(served["market_price"].astype(float), local["market_price"])
        assert served["signal"].tolist()[:2] == local["signal"].astype(object).tolist()[:2]
        assert pd.isna(served["signal"].iloc[2]) and np.isnan(local["fair_price"].iloc[2])
        records = _post(
            f"http://127.0.0.1:{port}/invocations",
            {"dataframe_records": [{"card_id": cards[0], "date": dates[0]}]},
        )
        assert records["predictions"][0]["fair_price"] == pytest.approx(local["fair_price"][0])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_mlflow_run_entry_point_with_the_local_environment(tmp_path):
    """`mlflow run . -e train --env-manager local` logs the same run `pokewatch train` does."""
    data = tmp_path / "panel.csv"
    make_panel(cards=3, days=10, seed=4).to_csv(data, index=False)
    uri = f"sqlite:///{tmp_path / 'project.db'}"
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, PATH=f"{bin_dir}:{os.environ['PATH']}")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            str(bin_dir / "mlflow"),
            "run",
            str(root),
            "-e",
            "train",
            "--env-manager",
            "local",
            "-P",
            f"data_path={data}",
            "-P",
            "run_name=from-project",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    from tests.conftest import all_runs

    (run,) = all_runs(uri)
    assert run.info.status == "FINISHED" and run.info.run_name == "from-project"
    assert run.data.params["model_type"] == "baseline_moving_average"
    assert "rmse" in run.data.metrics
