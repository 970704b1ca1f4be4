"""Integration: a real PostgreSQL + `mlflow server` (proxied artifacts), started by
scripts/tracking-server.sh. Complete runs, intact artifacts, 8 concurrent trainings on the
server and on SQLite, and the fault cases. Needs PostgreSQL installed (.ci/run installs it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pokewatch_core import evaluate, generate_prices
from tests.conftest import RUN_ARTIFACTS, all_runs, artifact_paths, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "tracking-server.sh"
EXE = Path(sys.executable).with_name("pokewatch")


class Server:
    def __init__(self, state: Path) -> None:
        # as docs/tracking-server.md prints it: no `uv run`, no mlflow on PATH, no
        # POKEWATCH_MLFLOW: the script finds the project's environment itself
        venv_bin = str(Path(sys.executable).parent)
        path = [p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin]
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in {"POKEWATCH_MLFLOW", "UV"}},
            "PATH": os.pathsep.join(path),
            "POKEWATCH_SERVER_DIR": str(state),
            "POKEWATCH_PG_PORT": str(free_port()),
            "POKEWATCH_MLFLOW_PORT": str(free_port()),
        }
        self.env.pop("VIRTUAL_ENV", None)
        self.state = state
        self.uri = f"http://127.0.0.1:{self.env['POKEWATCH_MLFLOW_PORT']}"

    def script(self, action: str) -> str:
        proc = subprocess.run(
            [str(SCRIPT.relative_to(ROOT)), action],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,  # the script itself waits on the server (up to 600 s) and says why
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def kill(self) -> None:
        """SIGKILL the mlflow server and its workers, as a crash would."""
        os.killpg(int((self.state / "mlflow.pid").read_text()), signal.SIGKILL)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("tracking-server"))
    assert srv.script("start") == srv.uri
    yield srv
    srv.script("purge")


def train(
    uri: str, cwd: Path, *args: str, **kwargs
) -> subprocess.Popen | subprocess.CompletedProcess:
    """``pokewatch train`` in ``cwd``; an empty ``uri`` means MLflow's default store there."""
    command = [str(EXE), "train", *(["--tracking-uri", uri] if uri else []), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if kwargs.get("background"):
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def small_panel(directory: Path, cards: int = 30, days: int = 60) -> Path:
    path = directory / f"panel_{cards}x{days}.parquet"
    generate_prices(cards=cards, days=days, seed=5).to_parquet(path)
    return path


def test_complete_run_with_intact_artifacts(server, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from pokewatch_core.analysis.by_card import metrics_by_card
    from pokewatch_core.evaluation.summary import evaluation_summary

    data = small_panel(tmp_path)
    proc = train(
        server.uri,
        tmp_path,
        "--data-path",
        str(data),
        "--experiment-name",
        "complete",
        "--register-model",
        "team_model",
    )
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(tracking_uri=server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("complete").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model_type"] == "baseline_moving_average"
    expected = evaluate("baseline_moving_average", str(data))
    for name, value in expected.metrics.items():
        assert run.data.metrics[name] == pytest.approx(value, rel=1e-12, nan_ok=True), name
    assert artifact_paths(client, run.info.run_id) >= RUN_ARTIFACTS
    # artifacts went through the server (proxied), into its artifact folder, not ./mlruns
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert not (tmp_path / "mlruns").exists()

    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "download")))
    predictions = pd.read_parquet(local / "tables" / "predictions.parquet")
    np.testing.assert_array_equal(predictions["predicted_price"], expected.frame["predicted_price"])
    by_card = pd.read_csv(local / "tables" / "metrics_by_card.csv")
    pd.testing.assert_frame_equal(by_card, metrics_by_card(expected.frame), check_dtype=False)
    text = (local / "summary" / "evaluation_summary.txt").read_text()
    assert text == evaluation_summary(expected, str(data))
    for png in (local / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000

    mlflow.set_tracking_uri(server.uri)
    model = mlflow.pyfunc.load_model("models:/team_model@champion")
    card = expected.frame["card_id"].iloc[0]
    answer = model.predict(pd.DataFrame({"card_id": [card]}))
    assert answer["fair_price"].notna().all()


def _run_eight(uri: str, cwd: Path, data: Path, experiment: str) -> list[subprocess.Popen]:
    procs = [
        train(
            uri,
            cwd,
            "--data-path",
            str(data),
            "--experiment-name",
            experiment,
            "--run-name",
            f"concurrent-{i}",
            background=True,
        )
        for i in range(8)
    ]
    for proc in procs:
        proc.wait(timeout=600)
    return procs


def _assert_eight_complete(uri: str, procs, experiment: str) -> None:
    from mlflow.tracking import MlflowClient

    failures = [p.stderr.read() for p in procs if p.returncode != 0]
    assert not failures, failures
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"concurrent-{i}" for i in range(8)]
    # none landed in another experiment (MLflow's own set_experiment races into Default)
    assert client.search_runs(["0"]) == []
    for run in runs:
        assert run.info.status == "FINISHED"
        assert len(run.data.metrics) >= 19 and "rmse" in run.data.metrics
        assert artifact_paths(client, run.info.run_id) >= RUN_ARTIFACTS


def test_eight_concurrent_trainings_on_the_server(server, tmp_path):
    data = small_panel(tmp_path, cards=20, days=40)
    procs = _run_eight(server.uri, tmp_path, data, "concurrent")
    _assert_eight_complete(server.uri, procs, "concurrent")


def test_eight_concurrent_trainings_on_the_default_sqlite_store(tmp_path):
    """No --tracking-uri: all eight create and share MLflow's default ./mlflow.db."""
    data = small_panel(tmp_path, cards=20, days=40)
    procs = _run_eight("", tmp_path, data, "concurrent")
    assert (tmp_path / "mlflow.db").is_file()
    _assert_eight_complete(f"sqlite:///{tmp_path / 'mlflow.db'}", procs, "concurrent")


def test_unreachable_server_fails_fast_with_one_line(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = train(uri, tmp_path)
    assert proc.returncode == 1
    assert time.monotonic() - started < 60
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and uri in lines[0] and "cannot reach" in lines[0]
    assert "Traceback" not in proc.stderr


def _pg_dir(server: Server) -> Path:
    if os.geteuid() == 0:  # the script's folder for PostgreSQL when run as root
        import hashlib

        digest = hashlib.md5(str(server.state.resolve()).encode(), usedforsecurity=False)
        return Path(f"/tmp/pokewatch-pg-{digest.hexdigest()[:12]}")
    return server.state / "pg"


def test_postgres_needs_the_generated_password_kept_off_the_process_list(server):
    """Before: initdb --auth=trust let any local user read and write the tracking database."""
    pg = _pg_dir(server)
    hba = (pg / "data" / "pg_hba.conf").read_text()
    rules = [line for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and not any(line.split()[-1] == "trust" for line in rules), rules
    password = (pg / "password").read_text().strip()
    assert len(password) >= 32
    for secret in (pg / "password", pg / "pgpass"):
        assert secret.stat().st_mode & 0o777 == 0o600, secret
    # no process shows the password in its command line or environment
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            for part in ("cmdline", "environ"):
                try:
                    assert password.encode() not in (proc / part).read_bytes(), proc
                except OSError:
                    continue
    # without the password file, PostgreSQL refuses the connection
    psql = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1]
    port = server.env["POKEWATCH_PG_PORT"]
    env = {**os.environ, "PGPASSFILE": "/dev/null", "PGCONNECT_TIMEOUT": "5"}
    denied = subprocess.run(
        [str(psql), "-h", "127.0.0.1", "-p", port, "-U", "mlflow", "-d", "mlflow", "-w", "-c", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert denied.returncode != 0 and "password" in denied.stderr, denied.stderr


def test_server_runs_with_telemetry_off(server):
    pid = (server.state / "mlflow.pid").read_text().strip()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"MLFLOW_DISABLE_TELEMETRY=true" in environ


def _running_run(uri: str, experiment: str) -> str | None:
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}"
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            experiment_id = json.loads(response.read())["experiment"]["experiment_id"]
        body = json.dumps({"experiment_ids": [experiment_id]}).encode()
        search = urllib.request.Request(
            f"{uri}/api/2.0/mlflow/runs/search",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(search, timeout=2) as response:
            runs = json.loads(response.read()).get("runs", [])
    except OSError:
        return None
    return next((r["info"]["run_id"] for r in runs if r["info"]["status"] == "RUNNING"), None)


def test_server_killed_while_logging_keeps_results_and_recovers(server, tmp_path):
    """Runs last in this module: it kills the module's server, then restarts it."""
    data = small_panel(tmp_path, cards=400, days=300)  # big enough to log for seconds
    proc = train(
        server.uri,
        tmp_path,
        "--data-path",
        str(data),
        "--experiment-name",
        "faults",
        background=True,
    )
    run_id = None
    deadline = time.monotonic() + 180
    while run_id is None:
        assert proc.poll() is None, "train finished before the server could be killed"
        assert time.monotonic() < deadline
        run_id = _running_run(server.uri, "faults")
        time.sleep(0.05)
    server.kill()
    killed_at = time.monotonic()
    proc.wait(timeout=300)
    stderr = proc.stderr.read()
    assert proc.returncode == 1, stderr
    assert time.monotonic() - killed_at < 120
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and f"run {run_id}" in lines[0] and "incomplete" in lines[0]
    kept = tmp_path / "pokewatch-failed-runs" / run_id
    assert str(kept.relative_to(tmp_path)) in lines[0]
    metrics = json.loads((kept / "metrics.json").read_text())
    expected = evaluate("baseline_moving_average", str(data))
    assert metrics["rmse"] == pytest.approx(expected.metrics["rmse"])
    assert len(pd.read_parquet(kept / "predictions.parquet")) == len(expected.frame)

    assert server.script("start") == server.uri  # same database and artifacts
    again = train(
        server.uri,
        tmp_path,
        "--data-path",
        str(small_panel(tmp_path)),
        "--experiment-name",
        "faults",
    )
    assert again.returncode == 0, again.stderr
    runs = all_runs(server.uri)
    assert any(r.info.status == "FINISHED" and r.info.experiment_id for r in runs)


def test_a_server_that_dies_at_start_is_reported_at_once_with_why(tmp_path):
    """Before: `start` polled a fixed 60 s and said only "did not start" (under load it gave
    up on a server that was still starting)."""
    fake = tmp_path / "mlflow"
    fake.write_text(
        "#!/bin/sh\necho 'mlflow: cannot bind the port (as a test fakes it)' >&2\nexit 3\n"
    )
    fake.chmod(0o755)
    srv = Server(tmp_path / "state")
    srv.env["POKEWATCH_MLFLOW"] = str(fake)
    started = time.monotonic()
    proc = subprocess.run(
        [str(SCRIPT), "start"], cwd=ROOT, env=srv.env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    try:
        assert proc.returncode != 0
        assert "exited before answering /health: mlflow: cannot bind the port" in proc.stderr
        assert time.monotonic() - started < 120  # PostgreSQL's start, then at once
    finally:
        srv.script("purge")
