"""The tracking store is resolved and checked once per command (`pokewatch train` checks the
server before it evaluates: tests/test_pipeline_trace.py) and the checked ``Store`` handed to
the logger is not checked again; a plain URI given to the library is still checked. The logged
model's name comes from the model (``Model.artifact_name``), not from a list of default names
in the core."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from pokewatch_core import Model, TrackingError, evaluate
from pokewatch_core.tracking import store as tracking_store
from pokewatch_core.tracking.log import log_evaluation, model_artifact_name
from tests.conftest import all_runs, free_port, make_panel


@pytest.fixture
def checks(monkeypatch):
    """The URIs ``check_reachable`` is asked about, in order (the real check still runs)."""
    seen: list[str | None] = []
    real = tracking_store.check_reachable

    def counted(uri, *args, **kwargs):
        seen.append(uri)
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(tracking_store, "check_reachable", counted)
    return seen


def test_a_checked_store_is_not_checked_again(store, checks):
    result = evaluate("baseline_moving_average", make_panel(), metrics=["rmse"])
    checked = tracking_store.reach_store(store)
    assert checks == [store]
    logged = log_evaluation(result, tracking_uri=checked, log_model=False)
    assert checks == [store]
    assert logged.tracking_uri == store
    (run,) = all_runs(store)
    assert run.info.run_id == logged.run_id and run.info.status == "FINISHED"


def test_a_plain_uri_given_to_the_library_is_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = evaluate("baseline_moving_average", make_panel(), metrics=["rmse"])
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError, match="cannot reach the MLflow tracking server"):
        log_evaluation(result, tracking_uri=uri)


def test_the_logged_model_is_named_by_the_model():
    class Plain(Model):
        name: ClassVar[str] = "plain"

    class Named(Model):
        name: ClassVar[str] = "named"
        artifact_name: ClassVar[str] = "house_model"

    assert model_artifact_name(Plain()) == "plain_model"
    assert model_artifact_name(Named()) == "house_model"


@pytest.mark.slow  # a new default store: a few seconds of migrations
def test_a_default_store_in_a_folder_with_a_space_is_found(run_cli, tmp_path, monkeypatch):
    """MLflow writes the default store of a folder whose path has a space percent-encoded
    (sqlite:////a%20b/mlflow.db): the lock, healing and the gate find the real file, and
    nothing is made beside the folder."""
    import re

    folder = tmp_path / "a b"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trained = run_cli("train", "--register-model", "cards")
    assert trained.exit_code == 0, trained.stderr
    run_id = re.search(r"Run (\w+) logged", trained.stdout).group(1)
    gated = run_cli(
        "gate", "--candidate", run_id, "--champion", "models:/cards@champion",
        "--rule", "rmse<=1.02*champion",
    )  # fmt: skip
    assert gated.exit_code == 0, gated.stderr
    assert (folder / "mlflow.db.lock").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a b"]  # no a%20b/


@pytest.mark.slow  # train, compare, gate and sweep: CI's slow run has it
def test_no_percent_encoded_folder_appears_beside_a_working_folder_mlflow_encodes(
    run_cli, tmp_path, monkeypatch, empty_store_file
):
    """MLflow names the default store of a folder ``a b`` ``sqlite:////…/a%20b/mlflow.db`` and,
    opening it, created the parent of that path as written: an empty ``a%20b/`` beside the
    folder. No command leaves anything beside the working folder (a space, ``@`` and ``=`` in
    its name: each is percent-encoded), and the runs land in its ./mlflow.db."""
    import re
    import shlex
    import shutil

    folder = tmp_path / "a b@c=d"
    folder.mkdir()
    shutil.copyfile(empty_store_file, folder / "mlflow.db")  # no migrations: a quick test
    make_panel(cards=3, days=12, seed=1).to_csv(folder / "small.csv", index=False)
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = ["--data-path", "small.csv"]
    trained = run_cli("train", *data, "--register-model", "cards")
    assert trained.exit_code == 0, trained.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
    uri = f"sqlite:///{folder / 'mlflow.db'}"  # the path as it is, not percent-encoded
    assert f"at {uri}" in trained.stdout
    ui = next(line for line in trained.stdout.splitlines() if "mlflow ui" in line)
    assert shlex.split(ui.split(": ", 1)[1])[-2:] == ["--backend-store-uri", uri]  # pasteable
    run_id = re.search(r"Run (\w+) logged", trained.stdout).group(1)
    commands = [
        ["compare", "--metric", "rmse"],
        ["gate", "--candidate", run_id, "--champion", "models:/cards@champion",
         "--rule", "rmse<=1.02*champion"],
        ["sweep", *data, "-p", "window_size=2,3", "--metric", "rmse"],
    ]  # fmt: skip
    for args in commands:
        result = run_cli(*args)
        assert result.exit_code == 0, f"{args}\n{result.stderr}"
        assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name], args
    assert len(all_runs(uri)) == 1 + 1 + 2
    assert (folder / "mlruns").is_dir()  # the artifacts, in the folder itself


@pytest.mark.parametrize(
    "uri", ["databricks", "databricks-uc", "uc", "sqlite:///mlflow.db?timeout=30"]
)
def test_store_uris_mlflow_takes_are_not_refused(uri):
    from pokewatch_core.tracking.store import check_tracking_uri, sqlite_path

    check_tracking_uri(uri)  # no ConfigError
    if uri.startswith("sqlite"):
        assert sqlite_path(uri) == Path("mlflow.db")  # its query options are no part of the file


def test_a_folder_whose_mlruns_holds_runs_is_refused_before_the_run(run_cli, tmp_path, monkeypatch):
    """MLflow falls back to the file store where ./mlruns holds runs, then refuses to log."""
    (tmp_path / "mlruns" / "0").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("name: Default\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run_cli("train")
    assert result.exit_code == 2, result.stderr
    assert "MLflow's default here is the file store" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_healing_prints_nothing_on_stdout(capsys):
    """Before: on a tracking server, MLflow's "View run …" lines for each healed run went to
    stdout, before `compare --json`'s JSON."""
    from types import SimpleNamespace

    from pokewatch_core.tracking.store import HOST_TAG, PID_TAG, _heal

    run = SimpleNamespace(
        info=SimpleNamespace(run_id="r1"),
        data=SimpleNamespace(tags={HOST_TAG: "h", PID_TAG: str(2**22 + 12345)}),  # no such pid
    )

    class Client:  # MLflow's client against a server, as far as healing sees it
        def search_experiments(self, view_type):
            return [SimpleNamespace(experiment_id="1")]

        def search_runs(self, *args, **kwargs):
            return [run]

        def set_tag(self, *args):
            pass

        def set_terminated(self, run_id, status):
            print(f"🏃 View run x at: http://127.0.0.1:5000/#/experiments/1/runs/{run_id}")

    assert _heal(Client()) == ["r1"]
    assert capsys.readouterr().out == ""
