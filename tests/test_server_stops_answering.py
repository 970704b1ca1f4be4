"""A tracking server that stops answering mid-command (docs/tracking-server.md): the command
says once what it waits for, gives up within ``POKEWATCH_SERVER_WAIT`` seconds with one error
line and exit 1, and does not claim a run was marked FAILED that the server never recorded.
The server is a stand-in on 127.0.0.1 that answers ``/health`` (and, for a run to start, the
experiment lookup and the run's creation, as MLflow does) and stalls or closes the connection
on every other request."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pokewatch_core.tracking import store as tracking_store
from pokewatch_core.tracking.store import EXPERIMENT_TAGS
from tests.conftest import make_panel

RUN_ID = "f" * 32
WAIT = 4  # seconds: POKEWATCH_SERVER_WAIT in these tests


class StandInServer:
    """``mode`` "stall" (never answers) or "close" (closes the connection) on every request
    but ``/health`` and, when ``starts_runs``, the few a run's start makes."""

    def __init__(self, mode: str, starts_runs: bool = True) -> None:
        self.paths: list[str] = []
        self.stop = threading.Event()
        experiment = {
            "experiment_id": "1",
            "name": "cards",
            "artifact_location": "mlflow-artifacts:/1",
            "lifecycle_stage": "active",
            "tags": [{"key": k, "value": v} for k, v in EXPERIMENT_TAGS.items()],
        }
        run = {
            "info": {
                "run_id": RUN_ID,
                "run_uuid": RUN_ID,
                "experiment_id": "1",
                "run_name": "stand-in",
                "status": "RUNNING",
                "start_time": 1,
                "artifact_uri": f"mlflow-artifacts:/1/{RUN_ID}/artifacts",
                "lifecycle_stage": "active",
            },
            "data": {"tags": [], "params": [], "metrics": []},
        }
        answers = {"/health": "OK"}
        if starts_runs:
            answers |= {
                "/api/2.0/mlflow/experiments/get-by-name": json.dumps({"experiment": experiment}),
                "/api/2.0/mlflow/experiments/search": json.dumps({"experiments": [experiment]}),
                "/api/2.0/mlflow/runs/search": json.dumps({"runs": []}),
                "/api/2.0/mlflow/runs/create": json.dumps({"run": run}),
            }
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self) -> None:
                path = self.path.split("?")[0]
                server.paths.append(path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if path in answers:
                    body = answers[path].encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if mode == "stall":
                    server.stop.wait(120)
                self.close_connection = True  # no response: the connection just closes

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tracking_store.SERVER_WAIT_VAR, str(WAIT))
    for name in tracking_store.http_settings(WAIT):  # PokeWatch chooses them
        monkeypatch.delenv(name, raising=False)
    servers: list[StandInServer] = []

    def start(mode: str, starts_runs: bool = True) -> StandInServer:
        servers.append(StandInServer(mode, starts_runs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _train(run_cli, url: str):
    data = Path("small.csv")
    make_panel(cards=3, days=20, seed=1).to_csv(data, index=False)
    started = time.monotonic()
    result = run_cli(
        "train", "--tracking-uri", url, "--data-path", str(data), "--experiment-name", "cards"
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    "mode",
    # a stall waits WAIT seconds; both are logged trains: CI's slow run has them
    [pytest.param("stall", marks=pytest.mark.slow), pytest.param("close", marks=pytest.mark.slow)],
)
def test_a_server_that_stops_answering_mid_run_is_given_up_on_in_bounded_time(
    run_cli, stand_in, mode
):
    server = stand_in(mode)
    result, took = _train(run_cli, server.url)
    assert "/api/2.0/mlflow/runs/create" in server.paths  # the run started, then it stopped
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    error = lines[-1]
    if mode == "stall":  # it waited: one line says what for, before the error
        assert lines[:-1] == [
            f"pokewatch: waiting for the tracking server at {server.url} (no answer yet; "
            f"giving up after about {WAIT} s, POKEWATCH_SERVER_WAIT)"
        ]
    else:  # a closed connection fails at once: nothing to wait for
        assert lines[:-1] == []
    assert error.startswith(f"pokewatch: error: run {RUN_ID} at {server.url} is incomplete")
    assert "marked FAILED (stage" not in error and "could not be marked FAILED" in error
    assert "stays RUNNING" in error and f"the tracking server at {server.url} stopped" in error
    assert "pokewatch-failed-runs" in error and Path("pokewatch-failed-runs", RUN_ID).is_dir()
    assert took < WAIT + 4  # the evaluation and the stand-in's answers take about a second


@pytest.mark.slow  # waits WAIT seconds
def test_a_server_that_answers_only_health_is_given_up_on_before_a_run(run_cli, stand_in):
    server = stand_in("stall", starts_runs=False)
    result, took = _train(run_cli, server.url)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"pokewatch: waiting for the tracking server at {server.url}")
    assert lines[1:] == [
        f"pokewatch: error: the tracking server at {server.url} stopped answering (no answer "
        f"within the request timeout; waited about {WAIT} s at most, POKEWATCH_SERVER_WAIT)"
    ]
    assert "/api/2.0/mlflow/runs/create" not in server.paths
    assert took < WAIT + 4


def test_the_users_mlflow_http_settings_are_kept(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv(tracking_store.SERVER_WAIT_VAR, "60")
    tracking_store.bound_server_waits()
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_server_wait_is_refused(run_cli, monkeypatch, tmp_path, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tracking_store.SERVER_WAIT_VAR, value)
    result = run_cli("train", "--tracking-uri", "sqlite:///x.db")
    assert result.exit_code == 2
    assert "POKEWATCH_SERVER_WAIT" in result.stderr
    assert list(tmp_path.iterdir()) == []
