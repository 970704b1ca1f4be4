"""A run ends FINISHED only when complete: every failure after the run started ends it FAILED
(KILLED on a signal) with a tag naming the stage, also when the failure handler itself fails,
through the one run lifecycle (``tracking.lifecycle``); the local results dump is atomic;
signals end the run KILLED and clean temporary folders; runs whose process is gone are healed
by the next command."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import all_runs, make_panel

EXE = Path(sys.executable).with_name("pokewatch")


def _panel(directory: Path, cards: int = 3, days: int = 8) -> Path:
    path = directory / "small.csv"
    make_panel(cards=cards, days=days, seed=1).to_csv(path, index=False)
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(extra)
    return env


def _unprivileged(command: list[str]) -> list[str]:
    """``command`` without the capabilities that let root write anywhere."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *command]


@pytest.mark.slow
def test_read_only_working_directory_ends_the_run_failed_not_finished(tmp_path):
    """Before: the artifact write failed, then the results dump failed too
    (PermissionError: 'pokewatch-failed-runs'), and MLflow's exit handler closed the run
    FINISHED with metrics, no artifacts and no model."""
    if os.geteuid() == 0 and subprocess.run(["setpriv", "--version"]).returncode != 0:
        pytest.skip("root without setpriv: cannot drop the capability to write anywhere")
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    uri = f"sqlite:///{store_dir / 'store.db'}"
    data = _panel(store_dir)
    cwd = tmp_path / "readonly"
    cwd.mkdir()
    cwd.chmod(0o555)
    try:
        proc = subprocess.run(
            _unprivileged([str(EXE), "train", "--tracking-uri", uri, "--data-path", str(data)]),
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        cwd.chmod(0o755)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{cwd} is not writable" in lines[0]
    assert "Traceback" not in proc.stderr
    (run,) = all_runs(uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["pokewatch.failed_stage"] == "artifacts"
    assert list(cwd.iterdir()) == []  # no half-written dump


def test_every_stage_that_fails_ends_the_run_failed_with_its_name(run_cli, store, monkeypatch):
    import mlflow

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    import mlflow.pyfunc

    # the module itself: `mlflow.pyfunc` on the package is a lazy proxy; writing the model
    # (mlflow.pyfunc.save_model, inside the logging of the model) fails as on a full disk
    monkeypatch.setattr(sys.modules["mlflow.pyfunc"], "save_model", broken)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(_panel(Path.cwd())))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0]
    (run,) = all_runs(store)
    assert run.info.status == "FAILED"
    assert run.data.tags["pokewatch.failed_stage"] == "model"
    assert mlflow.active_run() is None  # nothing left for MLflow's exit handler to end


def test_results_dump_is_atomic_or_absent(monkeypatch, tmp_path):
    """Before: a write that fails half-way left a 0-byte metrics.json behind."""
    import pandas as pd

    from pokewatch_core import evaluate
    from pokewatch_core.tracking.log import keep_results

    result = evaluate("baseline_moving_average", make_panel())
    monkeypatch.chdir(tmp_path)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    kept, problem = keep_results(result, "abc123", "data")
    assert kept is None and "No space left on device" in problem
    folder = tmp_path / "pokewatch-failed-runs"
    assert not folder.exists() or list(folder.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    kept, problem = keep_results(result, "abc123", "data")
    assert kept is not None and problem is None
    assert {p.name for p in kept.iterdir()} == {
        "metrics.json",
        "params.json",
        "predictions.parquet",
        "evaluation_summary.txt",
    }


def _mount_tmpfs(target: Path, size: str) -> bool:
    target.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
        capture_output=True,
    )
    return proc.returncode == 0


@pytest.mark.slow
def test_full_disk_fails_the_run_names_the_cause_and_leaves_no_empty_file(tmp_path):
    """A real full disk: the working directory (artifacts and dump) on a 1 MB tmpfs."""
    cwd = tmp_path / "small-disk"
    if not _mount_tmpfs(cwd, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN); covered by the mock above")
    try:
        store_dir = tmp_path / "store"
        store_dir.mkdir()
        uri = f"sqlite:///{store_dir / 'store.db'}"
        data = _panel(store_dir, cards=20, days=120)
        (cwd / "filler").write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))  # leave ~64 kB
        proc = subprocess.run(
            [str(EXE), "train", "--tracking-uri", uri, "--data-path", str(data)],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
        (run,) = all_runs(uri)
        assert run.info.status == "FAILED"
        assert "pokewatch.failed_stage" in run.data.tags
        empty = [p for p in cwd.rglob("*") if p.is_file() and p.stat().st_size == 0]
        assert empty == []
    finally:
        subprocess.run(["umount", "-l", str(cwd)], check=False)


def _start_training(tmp_path: Path, uri: str) -> subprocess.Popen[str]:
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments()  # create the store before polling it
    data = _panel(tmp_path, cards=300, days=300)  # logs for seconds
    return subprocess.Popen(
        [str(EXE), "train", "--tracking-uri", uri, "--data-path", str(data)],
        cwd=tmp_path,
        env=_env(TMPDIR=str(tmp_path / "tmp")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_running_run(uri: str, proc: subprocess.Popen[str]) -> object:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        runs = [r for r in all_runs(uri) if r.info.status == "RUNNING"]
        if runs:
            return runs[0]
        time.sleep(0.1)
    raise AssertionError("no run started")


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_during_logging_ends_the_run_killed_and_cleans_up(tmp_path, signum, code):
    """Before: SIGTERM left the run RUNNING forever and /tmp/pokewatch-* folders behind."""
    (tmp_path / "tmp").mkdir()
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = _start_training(tmp_path, uri)
    run = _wait_for_running_run(uri, proc)
    assert run.data.tags["pokewatch.pid"] == str(proc.pid)
    assert run.data.tags["pokewatch.host"] == socket.gethostname()
    time.sleep(0.5)  # inside the logging stages
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    (after,) = all_runs(uri)
    assert after.info.status == "KILLED"
    assert "pokewatch.failed_stage" in after.data.tags
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.slow
def test_run_of_a_killed_process_is_healed_by_the_next_command(tmp_path):
    """kill -9 cannot be caught: the next command on the store marks the run FAILED."""
    (tmp_path / "tmp").mkdir()
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = _start_training(tmp_path, uri)
    run = _wait_for_running_run(uri, proc)
    deadline = time.monotonic() + 120  # until it logs through its temporary folder
    while not list((tmp_path / "tmp").glob("pokewatch-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=60)
    assert all_runs(uri)[0].info.status == "RUNNING"
    left = list((tmp_path / "tmp").glob("pokewatch-*"))
    assert left  # nothing runs in a process killed with SIGKILL
    compare = subprocess.run(
        [str(EXE), "compare", "--tracking-uri", uri],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compare.returncode == 0, compare.stderr
    assert f"{run.info.run_id}" in compare.stdout + compare.stderr
    assert "abandoned" in compare.stdout + compare.stderr
    (after,) = all_runs(uri)
    assert after.info.status == "FAILED"
    assert after.data.tags["pokewatch.abandoned"] == "true"
    # the next command that makes a temporary folder removes those the killed one left
    train = subprocess.run(
        [str(EXE), "train", "--tracking-uri", uri, "--data-path", str(_panel(tmp_path))],
        cwd=tmp_path, env=_env(TMPDIR=str(tmp_path / "tmp")), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert [p for p in left if p.exists()] == []
    assert list((tmp_path / "tmp").glob("pokewatch-*")) == []


def test_temporary_folders_of_dead_processes_are_reaped_and_no_others(tmp_path, monkeypatch):
    """kill -9 leaves a process's $TMPDIR/pokewatch-* folders behind: the next one that makes
    a temporary folder removes them, and only them."""
    import tempfile

    from pokewatch_core.files import reap_stale_folders, temporary_directory, temporary_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = subprocess.run(  # a process that makes a folder and ends without removing it
        [sys.executable, "-c", "from pokewatch_core.files import temporary_folder as t\n"
         "print(t('run'))"],
        env=_env(TMPDIR=str(tmp_path)), capture_output=True, text=True, check=True,
    )  # fmt: skip
    dead = Path(made.stdout.strip())
    assert dead.parent == tmp_path and dead.is_dir() and dead.name.startswith("pokewatch-run-")
    (dead / "predictions.parquet").write_bytes(b"x" * 1000)
    _, host, pid, start, rand = dead.name.removeprefix("pokewatch-").split("-")
    mine = Path(temporary_folder("dask"))  # this process's: alive
    assert dead.exists() is False  # making it removed the dead process's folder
    other_host = "ffffffff" if host != "ffffffff" else "eeeeeeee"
    elsewhere = tmp_path / f"pokewatch-run-{other_host}-{pid}-{start}-{rand}"  # not this host's
    reused = tmp_path / f"pokewatch-run-{host}-{os.getpid()}-1-{rand}"  # pid reused since
    old = tmp_path / "pokewatch-ab12cd_9"  # an earlier version's, untouched for two days
    recent = tmp_path / "pokewatch-zz12cd_9"  # an earlier version's, recent
    checkout = tmp_path / "pokewatch-checkout"  # a folder of the user's, 0755
    frames = tmp_path / "pokewatch-frame-ab12cd_9"  # the caller's evaluation frame (scaling.md)
    for folder in (elsewhere, reused, old, recent, frames):
        folder.mkdir(mode=0o700)
    checkout.mkdir(mode=0o755)
    two_days_ago = time.time() - 2 * 24 * 3600
    for folder in (old, checkout, frames):
        os.utime(folder, (two_days_ago, two_days_ago))
    removed = reap_stale_folders()
    assert sorted(removed) == sorted([reused, old])
    assert all(p.is_dir() for p in (mine, elsewhere, recent, checkout, frames))
    with temporary_directory("run") as tmp:  # removed on exit, as tempfile's
        assert Path(tmp).name.startswith(f"pokewatch-run-{host}-{os.getpid()}-")
    assert not Path(tmp).exists()
    assert reap_stale_folders(tmp_path / "no-such-folder") == []


def test_running_run_of_a_live_process_is_left_alone(run_cli, store, tmp_path):
    from mlflow.tracking import MlflowClient

    from pokewatch_core.tracking.store import heal_abandoned_runs, run_owner_tags

    client = MlflowClient(tracking_uri=store)
    experiment = client.create_experiment("live")
    live = client.create_run(experiment, tags=run_owner_tags())  # this process: alive
    other_host = client.create_run(
        experiment, tags={**run_owner_tags(), "pokewatch.host": "elsewhere", "pokewatch.pid": "1"}
    )
    assert heal_abandoned_runs(store) == []
    assert client.get_run(live.info.run_id).info.status == "RUNNING"
    assert client.get_run(other_host.info.run_id).info.status == "RUNNING"


def test_the_error_names_the_folder_that_is_not_writable(tmp_path, monkeypatch):
    from pokewatch_core.tracking.log import describe_failure

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns").mkdir()
    denied = PermissionError(errno.EACCES, "Permission denied", "./mlruns/1/abc/artifacts")
    wrapped = RuntimeError("Failed to log artifact")
    wrapped.__cause__ = denied
    assert describe_failure(wrapped) == "./mlruns is not writable"
    full = OSError(errno.ENOSPC, "No space left on device", "/data/x")
    assert describe_failure(full) == "No space left on device (/data/x)"
    assert describe_failure(ValueError("bad\nthing")) == "ValueError: bad thing"


@pytest.mark.slow  # a logged train: CI's slow run has it
def test_a_full_disk_is_named_by_the_store_on_it_not_a_temporary_file(run_cli, store, monkeypatch):
    """A write into the artifact store fails as on a full disk (no file name, as a failed
    write() says): the one line names the artifact store of the run, not a temporary file."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalArtifactRepository, "log_artifact", full)
    monkeypatch.setattr(LocalArtifactRepository, "log_artifacts", full)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(_panel(Path.cwd())))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    (run,) = all_runs(store)
    artifacts = run.info.artifact_uri.removeprefix("file://")
    assert f"No space left on device (the artifact store {artifacts}" in line, line
    assert "stage artifacts" in line and "marked FAILED" in line
    assert run.info.status == "FAILED"


def test_a_full_sqlite_store_is_named(tmp_path):
    import sqlite3

    from pokewatch_core.tracking.log import describe_failure, run_places

    db = tmp_path / "store.db"
    db.touch()
    uri = f"sqlite:///{db}"
    full = sqlite3.OperationalError("database or disk is full")
    assert describe_failure(full, run_places(uri, None, "metrics")).startswith(
        f"No space left on device (the tracking store {db}"
    )
    # a file named by the error: the places on its disk (here all of them), the store first
    temporary = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "tmp" / "x"))
    line = describe_failure(temporary, run_places(uri, str(tmp_path / "mlruns"), "params"))
    assert line.startswith(f"No space left on device (the tracking store {db}"), line
    assert str(tmp_path / "tmp") not in line  # not the temporary file


def _started_run(store: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(store)
    experiment = mlflow.create_experiment("lifecycle")
    return str(mlflow.start_run(experiment_id=experiment).info.run_id)


def _ended(store: str, run_id: str) -> tuple[str, str | None]:
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=store).get_run(run_id)
    return run.info.status, run.data.tags.get("pokewatch.failed_stage")


def test_a_completed_lifecycle_ends_the_run_finished(store):
    import mlflow

    from pokewatch_core.tracking.lifecycle import run_lifecycle

    run_id = _started_run(store)
    with run_lifecycle(run_id) as run:
        run.stage = "dataset"
    assert run.status == "FINISHED" and run.stage == "end"
    assert _ended(store, run_id) == ("FINISHED", None)
    assert mlflow.active_run() is None


@pytest.mark.parametrize(
    ("raised", "status"),
    [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED"), (SystemExit, "KILLED")],
)
def test_a_lifecycle_left_by_an_exception_ends_the_run_with_its_stage(store, raised, status):
    import mlflow

    from pokewatch_core.tracking.lifecycle import run_lifecycle

    run_id = _started_run(store)
    with pytest.raises(raised), run_lifecycle(run_id) as run:
        run.stage = "artifacts"
        raise raised()
    assert _ended(store, run_id) == (status, "artifacts")
    assert mlflow.active_run() is None  # nothing left for MLflow's exit handler to end


def test_a_signal_python_dropped_does_not_let_the_run_finish(store):
    from pokewatch_core.errors import Terminated
    from pokewatch_core.interrupts import terminating_signals_raise
    from pokewatch_core.tracking.lifecycle import run_lifecycle

    class SignalsInItsDestructor:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGTERM)
            for _ in range(1000):  # the handler runs here, inside the destructor: dropped
                pass

    run_id = _started_run(store)
    with terminating_signals_raise(), pytest.raises(Terminated), run_lifecycle(run_id):
        SignalsInItsDestructor()  # dropped: the block completes
    assert _ended(store, run_id) == ("KILLED", "end")


def test_an_error_raised_while_a_signal_is_pending_ends_the_run_killed(store):
    """Seen under load: SIGTERM during the plots came out of matplotlib as "ValueError:
    Invalid bounding box", and the run was ended FAILED (exit 1, not 143)."""
    from pokewatch_core.errors import Terminated
    from pokewatch_core.interrupts import terminating_signals_raise
    from pokewatch_core.tracking.lifecycle import run_lifecycle

    run_id = _started_run(store)
    with terminating_signals_raise():
        with pytest.raises(Terminated) as raised, run_lifecycle(run_id) as run:
            run.stage = "artifacts"
            try:
                signal.raise_signal(signal.SIGTERM)
            except Terminated:
                raise ValueError("Invalid bounding box") from None
        assert isinstance(raised.value.__cause__, ValueError)
    assert _ended(store, run_id) == ("KILLED", "artifacts")


def test_a_late_signal_after_finished_was_recorded_leaves_the_run_finished(store, monkeypatch):
    import mlflow

    from pokewatch_core.tracking.lifecycle import run_lifecycle

    run_id = _started_run(store)
    end_run, calls = mlflow.end_run, []

    def interrupted_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt
        end_run(*args, **kwargs)

    monkeypatch.setattr(mlflow, "end_run", interrupted_once)
    with pytest.raises(KeyboardInterrupt), run_lifecycle(run_id):
        pass
    assert _ended(store, run_id) == ("FINISHED", None)
    assert mlflow.active_run() is None


def test_a_failed_parent_ends_its_open_children_with_its_status_and_stage(store):
    import mlflow
    from mlflow.tracking import MlflowClient

    from pokewatch_core.tracking.lifecycle import run_lifecycle

    mlflow.set_tracking_uri(store)
    client = MlflowClient(tracking_uri=store)
    experiment = client.create_experiment("sweep")
    parent_id, done_id, open_id = (client.create_run(experiment).info.run_id for _ in range(3))
    with pytest.raises(KeyboardInterrupt), run_lifecycle(parent_id) as parent:
        parent.stage = "children"
        with parent.child(done_id):
            pass
        parent.child(open_id)  # created, never entered
        raise KeyboardInterrupt
    assert _ended(store, parent_id) == ("KILLED", "children")
    assert _ended(store, done_id) == ("FINISHED", None)
    assert _ended(store, open_id) == ("KILLED", "children")


@pytest.mark.slow  # a killed process and its store lock: CI's slow run has it
def test_a_write_lock_left_by_an_interrupted_store_call_does_not_block_the_kill(tmp_path):
    """A signal that lands inside a store write can leave that write's SQLite connection
    holding the database's lock, reachable only from the unwound frames: the run is still
    ended KILLED at once (the connection is closed, its transaction rolled back), not after
    minutes of waiting on the lock."""
    import sqlite3

    import mlflow
    from mlflow.tracking import MlflowClient

    from pokewatch_core.errors import Terminated
    from pokewatch_core.tracking.lifecycle import run_lifecycle

    db = tmp_path / "store.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("locked"))

    def write_interrupted_between_statements() -> None:
        held = sqlite3.connect(db, isolation_level=None)
        held.execute("BEGIN IMMEDIATE")  # the write lock, as an unfinished transaction holds it
        raise Terminated(signal.SIGTERM)

    mlflow.set_tracking_uri(uri)
    try:
        started = time.monotonic()
        with pytest.raises(Terminated), run_lifecycle(run.info.run_id):
            write_interrupted_between_statements()
        assert time.monotonic() - started < 15
    finally:
        mlflow.set_tracking_uri(None)
    after = client.get_run(run.info.run_id)
    assert after.info.status == "KILLED"
    assert after.data.tags["pokewatch.failed_stage"] == "params"
