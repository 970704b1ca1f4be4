"""The logged pyfunc model: round trip, no pickle, registry aliases, `mlflow models serve`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pokewatch_core import evaluate
from pokewatch_core.tracking.log import log_evaluation
from tests.conftest import all_runs, free_port, make_panel
from tests.reference import threshold_signals


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return make_panel(cards=5, days=30, seed=9, nan_rate=0.05, gap_rate=0.1)


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory) -> Path:
    """A working directory that looks like a uv project (uv.lock + pyproject.toml), as the
    checkout where users run `pokewatch train`: MLflow would copy those files into models."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "pyproject.toml").write_text('[project]\nname = "someone-else"\nversion = "1"\n')
    (folder / "uv.lock").write_text("version = 1\n" + "# padding\n" * 50_000)
    return folder


@pytest.fixture(scope="module")
def logged(panel, project_dir, empty_store_file):
    """One evaluation logged and registered twice as `pokewatch_ma` (the alias moves to
    version 2); every test of the module reads it."""
    store = f"sqlite:///{project_dir / 'store.db'}"
    shutil.copyfile(empty_store_file, project_dir / "store.db")
    result = evaluate("baseline_moving_average", panel, params={"window_size": 4})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project_dir)
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
            mp.delenv(key, raising=False)
        for _ in range(2):
            run = log_evaluation(
                result, tracking_uri=store, data_source="panel", register_model="pokewatch_ma"
            )
    return result, run, store


@pytest.fixture(autouse=True)
def _tracking_uri_of_logged(request):
    """`models:/m-…` URIs resolve through the tracking URI: point MLflow at the store of the
    module's logged model in the tests that use it (each test starts with none set)."""
    if "logged" in request.fixturenames:
        import mlflow

        mlflow.set_tracking_uri(request.getfixturevalue("logged")[2])


def _last_price_before(panel: pd.DataFrame, card: str, day: pd.Timestamp) -> float:
    rows = panel[(panel["card_id"] == card) & (panel["date"] < day)].dropna()
    return float(rows.sort_values("date")["market_price"].iloc[-1]) if len(rows) else np.nan


def test_round_trip_equals_the_library(logged, panel):
    import mlflow

    result, run, _ = logged
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


def test_a_model_logged_before_the_tracking_package_still_loads(logged, tmp_path):
    """Models logged by earlier versions carry a code file (``tracking_model.py``, vendored
    from that version) that imports the serving code from ``pokewatch_core.fair_price``."""
    import mlflow
    import yaml

    result, run, _ = logged
    folder = Path(mlflow.artifacts.download_artifacts(run.model_uri, dst_path=str(tmp_path)))
    old_code = Path(__file__).parent / "data" / "logged_before" / "tracking_model.py"
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    flavor = meta["flavors"]["python_function"]
    current = Path(flavor["model_code_path"])
    (folder / current.name).unlink()  # MLflow keeps the code file by its name at the root
    shutil.copyfile(old_code, folder / old_code.name)
    flavor["model_code_path"] = str(current.with_name(old_code.name))
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    requests = pd.DataFrame({"card_id": result.frame["card_id"].iloc[:5].tolist()})
    old = mlflow.pyfunc.load_model(str(folder)).predict(requests)
    new = mlflow.pyfunc.load_model(run.model_uri).predict(requests)
    pd.testing.assert_frame_equal(old, new)


def test_missing_date_means_the_day_after_the_last_price(logged, panel):
    import mlflow

    _, run, _ = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    out = model.predict(pd.DataFrame({"card_id": ["card_0", "card_3"]}))
    for card, row in zip(["card_0", "card_3"], out.itertuples(), strict=True):
        observed = panel[(panel["card_id"] == card)].dropna().sort_values("date")
        assert row.date == observed["date"].iloc[-1] + pd.Timedelta(days=1)
        assert row.market_price == observed["market_price"].iloc[-1]
        assert row.fair_price == pytest.approx(observed["market_price"].iloc[-4:].mean())


def test_unknown_card_and_early_date_give_missing_values(logged):
    import mlflow

    _, run, _ = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    out = model.predict(
        pd.DataFrame({"card_id": ["nope", "card_1"], "date": ["2025-02-01", "1999-01-01"]})
    )
    assert out["fair_price"].isna().all()
    assert out["market_price"].isna().all()
    assert out["signal"].isna().all()


def test_ids_of_any_type_pandas_reads_are_taken_as_text(logged, panel):
    """Before: a categorical id column (as `pokewatch sample-data` writes to parquet) or an
    integer one failed MLflow's schema enforcement ("Can not safely convert category")."""
    import mlflow

    _, run, _ = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    requests = pd.DataFrame({"card_id": ["card_0", "card_3"], "date": ["2025-01-20"] * 2})
    text = model.predict(requests)
    as_category = model.predict(requests.astype({"card_id": "category"}))
    pd.testing.assert_frame_equal(as_category, text)
    numbers = model.predict(pd.DataFrame({"card_id": [7, 8], "date": ["2025-01-20"] * 2}))
    assert numbers["card_id"].tolist() == ["7", "8"] and numbers["fair_price"].isna().all()


def test_an_unparsable_date_is_a_bad_request_with_one_line(logged):
    import mlflow
    from mlflow.exceptions import MlflowException

    _, run, _ = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    with pytest.raises(MlflowException, match="column 'date': cannot parse dates") as caught:
        model.predict(pd.DataFrame({"card_id": ["card_0"], "date": ["someday"]}))
    assert caught.value.get_http_status_code() == 400
    assert "\n" not in caught.value.message


def test_missing_card_id_column_is_a_clear_error(logged):
    import mlflow

    _, run, _ = logged
    model = mlflow.pyfunc.load_model(run.model_uri)
    with pytest.raises(Exception, match="card_id"):
        model.predict(pd.DataFrame({"date": ["2025-01-05"]}))


def test_no_pickle_and_no_project_files_in_the_logged_model(logged, tmp_path):
    import mlflow

    _, run, _ = logged
    local = Path(mlflow.artifacts.download_artifacts(run.model_uri, dst_path=str(tmp_path)))
    files = [p for p in local.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"MLmodel", "pokewatch_model.json", "history.parquet"} <= names
    assert (local / "pyfunc.py").is_file()  # the models-from-code file, as the docs say
    for path in files:
        assert path.suffix not in {".pkl", ".pickle", ".joblib", ".cloudpickle"}, path
        assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"
    mlmodel = (local / "MLmodel").read_text()
    assert "model_code_path" in mlmodel and "python_model.pkl" not in mlmodel
    # lean: the working directory's uv project is not copied; requirements restore the model
    assert not names & {"uv.lock", "pyproject.toml", ".python-version"}, names
    assert sum(p.stat().st_size for p in files) < 200_000
    requirements = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("pokewatch==") for r in requirements)
    assert any(r.startswith("mlflow==") for r in requirements)
    # loads with pickle deserialisation forbidden
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    try:
        assert mlflow.pyfunc.load_model(str(local)).metadata.signature is not None
    finally:
        del os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"]


def test_the_mlmodel_names_no_path_of_the_machine_that_logged_it(logged, tmp_path):
    """MLflow recorded where the code file (this checkout) and each artifact (a temporary
    folder) were copied from; it reads neither back. Only ``artifact_path``, MLflow's record
    of where the store keeps the model, names a place."""
    import tempfile

    import mlflow
    import yaml

    _, run, _ = logged
    local = Path(mlflow.artifacts.download_artifacts(run.model_uri, dst_path=str(tmp_path)))
    meta = yaml.safe_load((local / "MLmodel").read_text())
    meta.pop("artifact_path")

    def strings(value: object) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    root = str(Path(__file__).resolve().parents[1])
    places = [
        s for s in strings(meta)
        if os.path.isabs(s) or root in s or tempfile.gettempdir() in s or "pokewatch-" in s
    ]  # fmt: skip
    assert places == []
    flavor = meta["flavors"]["python_function"]
    assert flavor["model_code_path"] == "pyfunc.py"
    assert {a["path"] for a in flavor["artifacts"].values()} == {
        "artifacts/pokewatch_model.json",
        "artifacts/history.parquet",
    }
    assert mlflow.pyfunc.load_model(str(local)).metadata.signature is not None  # still loads


def test_registered_twice_moves_the_alias(logged):
    import mlflow
    from mlflow.tracking import MlflowClient

    _, run, store = logged
    client = MlflowClient(tracking_uri=store)
    versions = sorted(int(v.version) for v in client.search_model_versions("name='pokewatch_ma'"))
    assert versions == [1, 2]
    assert str(client.get_model_version_by_alias("pokewatch_ma", "champion").version) == "2"
    assert run.registered_version == "2"
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model("models:/pokewatch_ma@champion")
    assert len(model.predict(pd.DataFrame({"card_id": ["card_1"]}))) == 1


def test_train_prints_the_registered_model(run_cli, store, panel, tmp_path):
    panel.to_parquet(tmp_path / "panel.parquet")
    result = run_cli(
        "train",
        "--data-path",
        "panel.parquet",
        "--tracking-uri",
        store,
        "--register-model",
        "cli_ma",
        "--alias",
        "live",
    )
    assert result.exit_code == 0, result.stderr
    assert "Registered: models:/cli_ma@live (version 1)" in result.stdout


def strict_json(body: bytes) -> object:
    """Parse as every JSON parser must: NaN, Infinity and -Infinity are not JSON."""

    def reject(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(body, parse_constant=reject)


def _post(url: str, payload: dict) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def test_strict_parser_rejects_what_mlflow_writes_for_missing_values():
    with pytest.raises(ValueError, match="NaN"):
        strict_json(b'{"fair_price": NaN}')


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_mlflow_models_serve_answers_valid_json(logged, tmp_path):
    import mlflow

    _, _, store = logged
    port = free_port()
    mlflow_exe = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    server = subprocess.Popen(
        [
            str(mlflow_exe),
            "models",
            "serve",
            "-m",
            "models:/pokewatch_ma@champion",
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
        # known card and date, known card without date, unknown card, date before history
        cards = ["card_0", "card_3", "unknown_card", "card_1"]
        dates = ["2025-01-20", None, "2025-01-20", "1999-01-01"]
        body = _post(
            f"http://127.0.0.1:{port}/invocations",
            {
                "dataframe_split": {
                    "columns": ["card_id", "date"],
                    "data": list(zip(cards, dates, strict=True)),
                }
            },
        )
        answer = strict_json(body)
        rows = answer["predictions"]
        mlflow.set_tracking_uri(store)
        local = mlflow.pyfunc.load_model("models:/pokewatch_ma@champion").predict(
            pd.DataFrame({"card_id": cards, "date": dates})
        )
        assert [r["card_id"] for r in rows] == cards
        for row, expected in zip(rows, local.itertuples(), strict=True):
            for column in ("market_price", "fair_price"):
                value = getattr(expected, column)
                if np.isnan(value):
                    assert row[column] is None, row  # null, not NaN
                else:
                    assert row[column] == pytest.approx(value)
            if pd.isna(expected.date):
                assert row["date"] is None  # null, not "NaT"
            else:
                assert row["date"] == expected.date.strftime("%Y-%m-%d")  # ISO date
            assert row["signal"] == (None if pd.isna(expected.signal) else expected.signal)
        assert rows[0]["fair_price"] is not None and rows[1]["date"] is not None
        assert rows[2] == {
            "card_id": "unknown_card",
            "date": "2025-01-20",
            "market_price": None,
            "fair_price": None,
            "signal": None,
        }
        assert rows[3]["fair_price"] is None and rows[3]["market_price"] is None
        records = strict_json(
            _post(
                f"http://127.0.0.1:{port}/invocations",
                {"dataframe_records": [{"card_id": cards[0], "date": dates[0]}]},
            )
        )
        assert records["predictions"][0]["fair_price"] == pytest.approx(local["fair_price"][0])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.mark.slow
def test_mlflow_run_lands_in_the_experiment_named_by_the_parameter(
    tmp_path, run_cli, empty_store_file
):
    """`mlflow run . -e train -P experiment_name=X`, as the docs print it (with the local
    environment): the evaluation is in X, carries the Projects run's source tags, and the
    Projects run (in Default: mlflow run was given no experiment) points to it."""
    from mlflow.tracking import MlflowClient

    data = tmp_path / "panel.csv"
    make_panel(cards=3, days=10, seed=4).to_csv(data, index=False)
    uri = f"sqlite:///{tmp_path / 'project.db'}"
    shutil.copyfile(empty_store_file, tmp_path / "project.db")
    # the entry point runs in the project directory (the checkout): give X an artifact
    # location here, so that the test writes nothing into the checkout's ./mlruns
    MlflowClient(tracking_uri=uri).create_experiment("X", str(tmp_path / "artifacts"))
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
            "-P",
            "experiment_name=X",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    client = MlflowClient(tracking_uri=uri)
    x = client.get_experiment_by_name("X")
    (run,) = client.search_runs([x.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "from-project"
    assert run.data.params["model_type"] == "baseline_moving_average"
    assert "rmse" in run.data.metrics
    (projects_run,) = client.search_runs(["0"])  # MLflow's Default experiment
    assert projects_run.info.status == "FINISHED"
    assert run.data.tags["pokewatch.projects_run_id"] == projects_run.info.run_id
    for tag in ("mlflow.source.type", "mlflow.source.git.commit", "mlflow.project.entryPoint"):
        assert run.data.tags[tag] == projects_run.data.tags[tag], tag
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert projects_run.data.tags["pokewatch.evaluation_run_id"] == run.info.run_id
    note = projects_run.data.tags["mlflow.note.content"]
    assert "'X'" in note and run.info.run_id in note
    # and `pokewatch compare` sees it there
    ranked = run_cli("compare", "--experiment-name", "X", "--tracking-uri", uri, "--json")
    assert [r["run_id"] for r in json.loads(ranked.stdout)["runs"]] == [run.info.run_id]


@pytest.fixture
def projects_run(store, monkeypatch):
    """What `mlflow run --experiment-name Y` sets up before it runs the entry point: a RUNNING
    run in Y whose id is in MLFLOW_RUN_ID (and the store in MLFLOW_TRACKING_URI)."""
    from mlflow.tracking import MlflowClient

    def start(experiment: str | None) -> str:
        client = MlflowClient(tracking_uri=store)
        experiment_id = client.create_experiment(experiment) if experiment else "0"
        run = client.create_run(
            experiment_id,
            tags={
                "mlflow.source.type": "PROJECT",
                "mlflow.project.entryPoint": "train",
                "mlflow.source.git.commit": "abc123",
                "mlflow.project.env": "local",
            },
        )
        monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
        monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
        return run.info.run_id

    return start


def _entry_point(run_cli, tmp_path, experiment_parameter: str):
    """The MLproject command as mlflow run expands it: an empty parameter passes no option."""
    path = tmp_path / "panel.csv"
    make_panel(cards=3, days=8, seed=1).to_csv(path, index=False)
    experiment = ["--experiment-name", experiment_parameter] if experiment_parameter else []
    return run_cli("train", "--data-path", str(path), *experiment, "--metric", "rmse")


@pytest.mark.parametrize(
    ("mlflow_run_experiment", "parameter"),
    [("Y", ""), ("Y", "Y")],
    ids=["mlflow-run-experiment-only", "both-the-same"],
)
def test_mlflow_run_with_an_experiment_keeps_one_run(
    run_cli, store, tmp_path, projects_run, mlflow_run_experiment, parameter
):
    run_id = projects_run(mlflow_run_experiment)
    result = _entry_point(run_cli, tmp_path, parameter)
    assert result.exit_code == 0, result.stderr
    (run,) = all_runs(store)
    assert run.info.run_id == run_id and "rmse" in run.data.metrics
    assert f"logged to experiment '{mlflow_run_experiment}'" in result.stdout
    assert "pokewatch.projects_run_id" not in run.data.tags


def test_mlflow_run_without_any_experiment_uses_the_default_one(
    run_cli, store, tmp_path, projects_run
):
    from mlflow.tracking import MlflowClient

    run_id = projects_run(None)  # mlflow run put its run in Default
    result = _entry_point(run_cli, tmp_path, "")
    assert result.exit_code == 0, result.stderr
    client = MlflowClient(tracking_uri=store)
    baseline = client.get_experiment_by_name("pokewatch_baseline")
    (run,) = client.search_runs([baseline.experiment_id])
    assert run.data.tags["pokewatch.projects_run_id"] == run_id
    assert run.data.tags["mlflow.source.git.commit"] == "abc123"
    assert run.data.tags["mlflow.project.env"] == "local"
    assert client.get_run(run_id).data.tags["pokewatch.evaluation_run_id"] == run.info.run_id
