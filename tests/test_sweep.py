"""Parameter sweeps: grid expansion, one validation for all combinations, ranking by a metric's
own direction, parallel = serial, every trial equal to its own evaluate()."""

from __future__ import annotations

import contextlib
import math
import sys

import pandas as pd
import pytest

import pokewatch_core as pw
from pokewatch_core import ConfigError
from pokewatch_core.engines.local import LocalEngine
from pokewatch_core.sweeps.grid import combinations, expand_range, parse_values, read_grid
from pokewatch_core.sweeps.plan import SweepPlan, best_trial, ranking


def test_lists_ranges_and_single_values():
    assert parse_values("window_size", "3,5,7,14") == ["3", "5", "7", "14"]
    assert parse_values("buy_threshold_pct", "0.05:0.20:0.05") == [0.05, 0.1, 0.15, 0.2]
    assert parse_values("window_size", "2:10:4") == [2, 6, 10]
    assert parse_values("window_size", "10:2:-4") == [10, 6, 2]
    assert parse_values("window_size", "5") == ["5"]
    assert expand_range(1, 2, 0.5) == [1.0, 1.5, 2.0]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1:2", "START:STOP:STEP"),
        ("1:5:0", "step is 0"),
        ("5:1:1", "away from the stop"),
        ("a:5:1", "not a number"),
        ("1:nan:1", "not a finite number"),
        ("3,,5", "empty value"),
        ("0:1e9:1", "at most"),
        # before: OverflowError (exit 1), or a 300-digit count
        ("0:1e308:1e-308", "has more than 10,000 values"),
        ("-1e308:1e308:1", "has more than 10,000 values"),
        ("1:2:1e-300", "has more than 10,000 values"),
        ("1:10001:1", "has 10,001 values"),
    ],
)
def test_bad_specs_are_usage_errors(text, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_values("window_size", text)


def test_grid_files_in_toml_and_yaml(tmp_path):
    toml = tmp_path / "grid.toml"
    toml.write_text(
        "window_size = [3, 5]\nmin_periods = 1\n"
        "[policy]\nbuy_threshold_pct = {start = 0.1, stop = 0.2, step = 0.05}\n"
    )
    expected = {
        "window_size": [3, 5],
        "min_periods": [1],
        "policy.buy_threshold_pct": [0.1, 0.15, 0.2],
    }
    assert read_grid(toml) == expected
    yaml = tmp_path / "grid.yaml"
    yaml.write_text(
        "window_size: [3, 5]\nmin_periods: 1\n"
        "policy:\n  buy_threshold_pct: {start: 0.1, stop: 0.2, step: 0.05}\n"
    )
    assert read_grid(yaml) == expected
    for bad, needle in [
        ("window_size = []", "no values"),
        ("window_size = {start = 1}", "exactly start, stop, step"),
        ("window_size = [", "cannot parse"),
    ]:
        toml.write_text(bad)
        with pytest.raises(ConfigError, match=needle):
            read_grid(toml)
    with pytest.raises(ConfigError, match="no such file"):
        read_grid(tmp_path / "missing.toml")


def test_combinations_in_grid_order_and_bounded():
    grid = {"a": [1, 2], "b": ["x", "y", "z"]}
    combos = combinations(grid)
    assert len(combos) == 6 and combos[0] == {"a": 1, "b": "x"} and combos[-1] == {"a": 2, "b": "z"}
    with pytest.raises(ConfigError, match="combinations"):
        combinations({"a": list(range(200)), "b": list(range(200))})


@pytest.fixture(scope="module")
def plan():
    grid = {"window_size": ["2", "5"], "policy.buy_threshold_pct": [0.05, 0.2]}
    return SweepPlan(
        LocalEngine(pw.embedded_sample_path()),
        "baseline_moving_average",
        "threshold",
        None,
        {"fee_pct": "0.01"},
        combinations(grid),
        "2025-09-01",
    )


def test_each_trial_equals_its_own_evaluate(plan):
    trials = plan.run(jobs=1)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    for trial in trials:
        alone = pw.evaluate(
            "baseline_moving_average",
            pw.embedded_sample_path(),
            params=trial.params,
            test_start="2025-09-01",
        )
        assert trial.metrics.keys() == alone.metrics.keys()
        for name, value in alone.metrics.items():
            got = trial.metrics[name]
            assert got == value or (math.isnan(got) and math.isnan(value)), name


def test_parallel_gives_the_serial_results(plan):
    seen = []
    assert plan.run(jobs=2, on_trial=seen.append) == plan.run(jobs=1)
    assert sorted(t.number for t in seen) == [0, 1, 2, 3]


def test_a_bad_value_anywhere_in_the_grid_fails_before_anything_runs(plan):
    bad = SweepPlan(
        plan.engine,
        plan.model,
        plan.policy,
        None,
        {},
        [{"window_size": "3"}, {"window_size": "0"}],
        None,
    )
    with pytest.raises(ConfigError, match="window_size"):
        bad.check()


def test_ranking_follows_the_metric_direction(plan):
    trials = plan.run()
    rmse = ranking(trials, "rmse", False)
    assert list(rmse["rmse"]) == sorted(rmse["rmse"])
    assert rmse.loc[0, "trial"] == best_trial(trials, "rmse", False).number
    skill = ranking(trials, "skill_vs_naive", True)
    assert list(skill["skill_vs_naive"]) == sorted(skill["skill_vs_naive"], reverse=True)
    assert list(rmse.columns[:4]) == ["rank", "trial", "window_size", "policy.buy_threshold_pct"]


# --- the command: runs read back from the store ------------------------------------------


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One `pokewatch sweep` over 2 x 2 combinations into a fresh store."""
    from tests.conftest import main_in_process

    uri = f"sqlite:///{tmp_path_factory.mktemp('sweep') / 'store.db'}"
    main_in_process(
        "sweep",
        "-p",
        "window_size=2,5",
        "-p",
        "buy_threshold_pct=0.05:0.10:0.05",
        "-p",
        "fee_pct=0.01",
        "--metric",
        "skill_vs_naive",
        "--tracking-uri",
        uri,
        "--experiment-name",
        "sweeps",
        "--run-name",
        "grid",
    )
    return uri


@pytest.mark.slow  # a logged sweep of a few children: CI's slow run has it
def test_parent_and_children_are_read_back(swept):
    from mlflow.tracking import MlflowClient

    from tests.conftest import artifact_paths

    client = MlflowClient(tracking_uri=swept)
    experiment = client.get_experiment_by_name("sweeps")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("pokewatch.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and len(runs) == 5
    assert {r.info.status for r in runs} == {"FINISHED"}
    combos = {(c.data.params["window_size"], c.data.params["buy_threshold_pct"]) for c in children}
    assert combos == {("2", "0.05"), ("2", "0.1"), ("5", "0.05"), ("5", "0.1")}
    assert all(c.data.params["fee_pct"] == "0.01" for c in children)
    for child in children:  # every metric, equal to the combination's own evaluation
        alone = pw.evaluate(
            "baseline_moving_average",
            pw.embedded_sample_path(),
            params={k: child.data.params[k] for k in ("window_size", "buy_threshold_pct")}
            | {"fee_pct": "0.01"},
        )
        for name, value in alone.metrics.items():
            got = child.data.metrics.get(name, math.nan)
            assert got == pytest.approx(value, nan_ok=True), name
    best_id = parent.data.tags["pokewatch.best_run_id"]
    # greater is better; a tie goes to the earlier combination
    best = max(
        children,
        key=lambda c: (c.data.metrics["skill_vs_naive"], -int(c.data.tags["pokewatch.trial"])),
    )
    assert best.info.run_id == best_id
    assert parent.data.metrics["skill_vs_naive"] == best.data.metrics["skill_vs_naive"]
    assert json_grid(parent) == {"window_size": ["2", "5"], "buy_threshold_pct": ["0.05", "0.1"]}
    parent_files = artifact_paths(client, parent.info.run_id)
    assert parent_files == {
        "tables/sweep.csv",
        "plots/sweep_window_size.png",
        "plots/sweep_buy_threshold_pct.png",
    }
    assert "plots/strategy_equity_curve.png" in artifact_paths(client, best_id)
    others = [c for c in children if c.info.run_id != best_id]
    assert all(not artifact_paths(client, c.info.run_id) for c in others)
    models = client.search_logged_models([experiment.experiment_id])
    assert [m.source_run_id for m in models] == [best_id]
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "tables/sweep.csv"))
    assert table.loc[0, "run_id"] == best_id and list(table["rank"]) == [1, 2, 3, 4]


def json_grid(run) -> dict:
    import json

    return json.loads(run.data.params["grid"])


def _sweep_command(grid: str, uri: str, *options: str) -> list[str]:
    """``pokewatch sweep -p GRID`` into store ``uri``, as a process of its own."""
    import sys

    return [sys.executable, "-m", "pokewatch_core", "sweep", "-p", grid, *options,
            "--tracking-uri", uri]  # fmt: skip


@pytest.mark.slow
def test_an_interrupted_sweep_leaves_no_running_run(tmp_path):
    import os
    import signal
    import subprocess

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = subprocess.Popen(
        _sweep_command("window_size=1:80:1", uri),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MLFLOW_LOGGING_LEVEL": "ERROR"},
    )
    # progress lines say when children are done; the store is read only after the process ends
    # (a second connection while it creates the store would race its migrations)
    for line in proc.stderr:  # evaluated first, then logged: stop once children are logged
        if line.startswith("logged"):
            break
    else:
        pytest.fail("the sweep ended before logging: " + proc.stderr.read())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    client = MlflowClient(tracking_uri=uri)
    assert proc.returncode != 0, err
    runs = client.search_runs(["0", "1"])
    statuses = {r.data.tags.get("pokewatch.sweep"): set() for r in runs}
    for r in runs:
        statuses[r.data.tags.get("pokewatch.sweep")].add(r.info.status)
    assert statuses["parent"] == {"KILLED"}, err
    assert statuses["child"] <= {"FINISHED", "KILLED"} and "FINISHED" in statuses["child"]
    assert "RUNNING" not in {r.info.status for r in runs}


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_the_library_function(tmp_path):
    result = pw.run_sweep(
        "baseline_moving_average",
        pw.embedded_sample_path(),
        {"window_size": [2, 4]},
        params={"min_periods": 1},
        metric="mae",
    )
    assert [t.params for t in result.trials] == [
        {"min_periods": 1, "window_size": 2},
        {"min_periods": 1, "window_size": 4},
    ]
    assert result.best.metrics["mae"] == min(t.metrics["mae"] for t in result.trials)
    assert result.parent_run_id is None
    logged = pw.run_sweep(
        "baseline_moving_average",
        pw.embedded_sample_path(),
        {"window_size": [2, 4]},
        metrics=["mae", "rmse"],
        metric="mae",
        log=True,
        tracking_uri=f"sqlite:///{tmp_path / 'lib.db'}",
        experiment_name="lib",
    )
    assert logged.parent_run_id and len(logged.child_run_ids) == 2
    with pytest.raises(ConfigError, match="not computed"):
        pw.run_sweep(
            "baseline_moving_average", pw.embedded_sample_path(), {}, metrics=["rmse"], metric="mae"
        )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-p", "window_size=1:5:0"], "step is 0"),
        (["-p", "window_size=3,0"], "window_size"),
        (["-p", "window_size=2,3", "--metric", "nope"], "no such metric"),
        (["--grid", "missing.toml"], "no such file"),
        (["--grid", "."], "not a regular file"),
        (["-p", "window_size=2,3", "-p", "model.window_size=4,5"], "given twice"),
        (["-p", "window_size=2,3", "-p", "window_size=7"], "given twice"),
        (["-p", "window_size=2,3", "--metric", "dataset_size"], "no better direction"),
        (["-p", "window_size=2,3", "--engine", "dask", "--jobs", "2"], "--jobs needs --engine"),
        (["-p", "window_size=2,3", "--partitions", "2"], "--partitions needs --engine dask"),
        (["-p", "window_size=2,3", "--engine", "dask", "--id-col", "x"], "need --engine local"),
    ],
)
def test_bad_sweeps_are_refused_before_any_run(args, needle, run_cli, store):
    from tests.conftest import all_runs

    out = run_cli("sweep", "--tracking-uri", store, *args)
    assert out.exit_code == 2 and needle in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert all_runs(store) == []


def test_grid_files_must_be_text_and_not_repeat_a_parameter(run_cli, store, tmp_path):
    from tests.conftest import all_runs

    binary = tmp_path / "g.toml"
    binary.write_bytes(b"\xff\xfe")
    out = run_cli("sweep", "--tracking-uri", store, "--grid", str(binary))
    assert out.exit_code == 2 and "UTF-8" in out.stderr
    grid = tmp_path / "grid.toml"
    grid.write_text("window_size = [3]\n")
    out = run_cli("sweep", "--tracking-uri", store, "--grid", str(grid), "-p", "window_size=5,7")
    assert out.exit_code == 2 and "both --grid and -p" in out.stderr
    assert all_runs(store) == []


def test_a_metric_undefined_everywhere_logs_nothing(run_cli, store):
    from mlflow.tracking import MlflowClient

    out = run_cli(
        "sweep",
        "--tracking-uri",
        store,
        "-p",
        "buy_threshold_pct=0.9,0.95",
        "--metric",
        "buy_precision",
        "--experiment-name",
        "nan",
    )
    assert out.exit_code == 1 and "nothing to rank" in out.stderr
    client = MlflowClient(tracking_uri=store)
    # every combination is evaluated and the best chosen before the parent run exists: a
    # sweep with nothing to rank logs nothing
    assert client.get_experiment_by_name("nan") is None


@pytest.mark.parametrize(
    ("grid", "jobs", "needle"),
    [
        ({"window_size": "35"}, 1, "non-empty list"),
        ({"window_size": 3}, 1, "non-empty list"),
        ({"window_size": {"start": 2, "stop": 4}}, 1, "start, stop, step"),
        ({"window_size": [2, 3]}, 0, "jobs must be at least 1"),
    ],
)
def test_run_sweep_checks_its_grid(grid, jobs, needle):
    with pytest.raises(ConfigError, match=needle):
        pw.run_sweep("baseline_moving_average", pw.embedded_sample_path(), grid, jobs=jobs)


def test_run_sweep_takes_a_range_table():
    result = pw.run_sweep(
        "baseline_moving_average",
        pw.embedded_sample_path(),
        {"window_size": {"start": 2, "stop": 4, "step": 2}},
        metrics=["rmse"],
    )
    assert [t.params["window_size"] for t in result.trials] == [2, 4]


def test_a_logged_sweep_refuses_what_it_would_refuse_late_before_any_work(tmp_path):
    """A misspelled logging option, an unknown log_models or a bad experiment name is refused
    before the data is read; inside an active MLflow run of the caller, the sweep refuses to
    start and leaves that run alone."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'lib.db'}"
    args = ("baseline_moving_average", tmp_path / "missing.parquet", {"window_size": [2, 3]})
    with pytest.raises(ConfigError, match="unknown logging option 'experiment_nam'"):
        pw.run_sweep(*args, log=True, tracking_uri=uri, experiment_nam="x")
    with pytest.raises(ConfigError, match="log_models must be 'best' or 'all'"):
        pw.run_sweep(*args, log=True, tracking_uri=uri, log_models="none")
    with pytest.raises(ConfigError, match="experiment-name must not be empty"):
        pw.run_sweep(*args, log=True, tracking_uri=uri, experiment_name=" ")
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as mine:
            with pytest.raises(ConfigError, match="an MLflow run is active"):
                pw.run_sweep(
                    "baseline_moving_average", pw.embedded_sample_path(), {"window_size": [2, 3]},
                    log=True, tracking_uri=uri,
                )  # fmt: skip
            assert mlflow.active_run().info.run_id == mine.info.run_id
        client = mlflow.tracking.MlflowClient(uri)
        assert client.get_run(mine.info.run_id).info.status == "FINISHED"
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert [r.info.run_id for r in runs] == [mine.info.run_id]  # the sweep logged nothing
    finally:
        mlflow.set_tracking_uri(None)


def test_bad_data_in_a_logged_sweep_logs_nothing(tmp_path):
    """Every trial is evaluated before the parent run exists: data that fails in evaluation
    (no row after the test start) leaves no run."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'lib.db'}"
    with pytest.raises(pw.DataError, match="no rows on or after test_start"):
        pw.run_sweep(
            "baseline_moving_average", pw.embedded_sample_path(), {"window_size": [2, 3]},
            test_start="2030-01-01", log=True, tracking_uri=uri, experiment_name="bad",
        )  # fmt: skip
    client = mlflow.tracking.MlflowClient(uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


@pytest.mark.slow  # a new default store: a few seconds of migrations
def test_the_sweep_says_where_it_logged_with_the_default_store(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run_cli("sweep", "-p", "window_size=2,3", "--metric", "rmse")
    assert result.exit_code == 0, result.stderr
    assert " at None" not in result.stdout and "mlflow.db" in result.stdout.splitlines()[-1]


@pytest.mark.slow  # twelve child runs: CI's slow run has it
def test_the_sweep_summary_says_when_it_shows_only_the_best(run_cli, store, tmp_path):
    """Before: 12 combinations printed 10 rows and did not say so."""
    from tests.conftest import make_panel

    data = tmp_path / "p.csv"
    make_panel(cards=2, days=8, seed=1).to_csv(data, index=False)
    result = run_cli(
        "sweep", "--tracking-uri", store, "--data-path", str(data), "-p", "window_size=1:12:1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "(the best 10 of 12; every combination is in the parent run's tables/sweep.csv)" in (
        result.stdout
    )


def _children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (from /proc; zombies do not count)."""
    from pathlib import Path

    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds no memory: it only waits to be reaped


@pytest.mark.slow  # a few seconds: the workers must be busy when the sweep is killed
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_workers_of_a_sweep_killed_with_sigkill_end_with_it(tmp_path):
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(  # minutes of work for two workers
        _sweep_command("window_size=1:2000:1", f"sqlite:///{tmp_path / 'store.db'}", "--jobs", "2"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the sweep ended before its workers started"
            workers = _children(proc.pid)
            time.sleep(0.1)
        assert len(workers) == 2, workers
        time.sleep(1.0)  # inside their trials
        assert all(_alive(pid) for pid in workers)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        for pid in [proc.pid, *workers]:  # whatever a failure left (a reused pid is unlikely)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow  # forks and waits for the watch: CI's slow run has it
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_without_prctl_still_ends_with_its_parent(tmp_path):
    """The portable fallback: with no parent-death signal, the watch thread ends the worker."""
    import subprocess
    import time

    script = """
import os, sys, time
from pokewatch_core.sweeps import plan
parent = os.getpid()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the test waits for stdout to close
    sys.platform = "other"  # no prctl: only the watch thread
    plan.die_with_parent(parent)
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
time.sleep(0.3)
os._exit(0)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    worker = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 3
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)
