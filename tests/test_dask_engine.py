"""The dask engine on a real LocalCluster (2 worker processes, 127.0.0.1, no dashboard),
started and stopped by this module: every metric equals the local engine's within 1e-9
relative, on the embedded sample, a stocks-style ragged monthly panel and a shuffled
multi-file parquet input; the workers write the evaluation frame; refusals come before work."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from pokewatch_core import (
    PREDICTED,
    PRICE,
    ConfigError,
    DataError,
    Metric,
    Sums,
    embedded_sample_path,
    evaluate,
)
from pokewatch_core.engines.dask_engine import DaskEngine, evaluate_on_dask
from pokewatch_core.evaluation.spec import EvaluationSpec
from pokewatch_core.plugins.resolve import resolve_components
from tests.conftest import all_runs, make_panel

pytestmark = [pytest.mark.slow, pytest.mark.dask]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=50,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def count_calls(monkeypatch, owner, name) -> list[int]:
    """A one-item list counting the calls of ``owner.name`` (which still runs)."""
    real, count = getattr(owner, name), [0]

    def counted(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return count


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def on_dask(data, scheduler, out: Path, test_start=None, metrics=None, **options):
    spec = EvaluationSpec.build("baseline_moving_average", metrics=metrics, test_start=test_start)
    return evaluate_on_dask(str(data), spec, scheduler=scheduler, output_dir=out, **options)


def assert_same_numbers(local, remote) -> None:
    assert list(remote.metrics) == list(local.metrics)
    for name, value in local.metrics.items():
        assert same(remote.metrics[name], value), (name, remote.metrics[name], value)
    assert remote.inferred == local.inferred  # e.g. the periods per year of strategy_sharpe


def assert_same_analyses(local, remote) -> None:
    """The summary, plots and tables of a run read these: the merged ones are the local ones."""
    assert remote.overview == local.overview
    assert remote.reports_signals == local.reports_signals
    pd.testing.assert_frame_equal(remote.by_card, local.by_card, rtol=1e-9)
    np.testing.assert_allclose(remote.backtest.equity, local.backtest.equity, rtol=1e-9)
    np.testing.assert_array_equal(remote.backtest.dates, local.backtest.dates)
    for name, value in vars(local.signal_quality).items():
        assert same(getattr(remote.signal_quality, name), value), name


def assert_same_frame(local, frame_dir: Path) -> None:
    """The workers' parts are the local evaluation frame, row for row (in another order)."""
    written = pd.read_parquet(frame_dir)
    key = ["card_id", "date"]
    expect = local.frame.assign(card_id=local.frame["card_id"].astype(str))
    got = written.assign(card_id=written["card_id"].astype(str))
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True)[expect.columns],
        expect.sort_values(key).reset_index(drop=True),
        check_dtype=False,
        check_categorical=False,
    )


@pytest.mark.parametrize("test_start", [None, "2025-10-01"])
def test_embedded_sample_gives_the_local_numbers(scheduler, tmp_path, test_start):
    local = evaluate("baseline_moving_average", embedded_sample_path(), test_start=test_start)
    remote = on_dask(embedded_sample_path(), scheduler, tmp_path / "f", test_start, partitions=7)
    assert remote.partitions == 7 and remote.rows == len(local.frame)
    assert remote.params == {"engine": "dask", "partitions": 7}
    assert_same_numbers(local, remote)
    assert_same_analyses(local.analyses, remote.analyses)
    assert_same_frame(local, remote.frame_dir)
    assert sorted(p.name for p in remote.frame_dir.iterdir()) == [
        f"part-{k:05d}.parquet" for k in range(7)
    ]  # the routing scratch is gone


def ragged_monthly_panel(seed: int = 3) -> pd.DataFrame:
    """Stocks-style: month-end closes, tickers listed and delisted at different months."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2015-01-31", periods=120, freq="ME")
    rows = []
    for t in range(60):
        first = int(rng.integers(0, 100))
        last = int(rng.integers(first + 1, 121))
        prices = 50 * np.exp(np.cumsum(rng.normal(0.005, 0.08, last - first)))
        prices[rng.random(last - first) < 0.03] = np.nan
        rows += [(f"TICK{t:02d}", months[first + i], p) for i, p in enumerate(prices)]
    return pd.DataFrame(rows, columns=["card_id", "date", "market_price"])


@pytest.mark.parametrize("test_start", [None, "2021-06-30"])
def test_ragged_monthly_panel_gives_the_local_numbers(scheduler, tmp_path, test_start):
    panel = ragged_monthly_panel()
    panel.to_csv(tmp_path / "stocks.csv", index=False)
    local = evaluate("baseline_moving_average", tmp_path / "stocks.csv", test_start=test_start)
    remote = on_dask(tmp_path / "stocks.csv", scheduler, tmp_path / "frame", test_start)
    assert_same_numbers(local, remote)
    assert_same_frame(local, remote.frame_dir)


def test_shuffled_multi_file_parquet_gives_the_local_numbers(scheduler, tmp_path):
    data = pd.read_parquet(embedded_sample_path()).sample(frac=1.0, random_state=5)
    folder = tmp_path / "input"
    (folder / "more").mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(data)), 6)):
        where = folder / "more" if i % 2 else folder
        data.iloc[chunk].to_parquet(where / f"chunk-{i}.parquet", row_group_size=2000)
    local = evaluate("baseline_moving_average", embedded_sample_path(), test_start="2025-08-01")
    by_folder = on_dask(folder, scheduler, tmp_path / "a", "2025-08-01", partitions=5)
    assert_same_numbers(local, by_folder)
    by_glob = on_dask(folder / "**" / "*.parquet", scheduler, tmp_path / "b", "2025-08-01")
    assert_same_numbers(local, by_glob)
    assert_same_frame(local, by_glob.frame_dir)


@dataclass
class MedianError(Metric):
    """A third-party metric with no state: the engine computes it on the gathered frame."""

    name: ClassVar[str] = "median_abs_error"
    description: ClassVar[str] = "Median |predicted - market| (price)."
    unit: ClassVar[str] = "price"

    def compute(self, frame: pd.DataFrame) -> float:
        return float((frame["predicted_price"] - frame["market_price"]).abs().median())


def test_a_stateless_metric_is_computed_on_the_gathered_frame(scheduler, tmp_path):
    metrics = ["rmse", "mae", MedianError]
    local = evaluate("baseline_moving_average", embedded_sample_path(), metrics=metrics)
    remote = on_dask(embedded_sample_path(), scheduler, tmp_path / "f", metrics=metrics)
    assert_same_numbers(local, remote)
    assert remote.frame is not None and len(remote.frame) == len(local.frame)


@dataclass(frozen=True)
class SquaredLogErrors(Sums[tuple[float, int]]):
    """A third-party sum-and-count statistic: merged by adding, no merge written."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> tuple[float, int]:
        error = (np.log(frame[PREDICTED]) - np.log(frame[PRICE])).dropna()
        return float((error**2).sum()), len(error)


@dataclass
class RootMeanSquaredLogError(Metric):
    name: ClassVar[str] = "rmsle_test"
    description: ClassVar[str] = "Root mean squared log error (ratio)."

    def statistic(self) -> SquaredLogErrors:
        return SquaredLogErrors()

    def finalize(self, value: tuple[float, int]) -> float:
        total, count = value
        return math.sqrt(total / count) if count else float("nan")


def test_a_sums_metric_of_a_plugin_merges_on_the_partitions(scheduler, tmp_path):
    metrics = ["rmse", RootMeanSquaredLogError]
    local = evaluate("baseline_moving_average", embedded_sample_path(), metrics=metrics)
    remote = on_dask(
        embedded_sample_path(), scheduler, tmp_path / "f", metrics=metrics, partitions=4
    )
    assert_same_numbers(local, remote)
    assert remote.frame is None  # merged from the partitions' values: nothing gathered
    assert SquaredLogErrors() in remote.states


def test_a_stateless_metric_over_the_gather_limit_is_refused_before_work(scheduler, tmp_path):
    out = tmp_path / "f"
    with pytest.raises(ConfigError, match="metric 'median_abs_error' declares no mergeable state"):
        on_dask(
            embedded_sample_path(), scheduler, out, metrics=["rmse", MedianError], gather_rows=1000
        )
    assert not out.exists()  # nothing routed, nothing written


def test_a_model_the_workers_cannot_import_is_refused_in_one_line(scheduler, tmp_path):
    # a plugin module only this (client) process can import: the workers started before
    package = tmp_path / "client_only"
    package.mkdir()
    (package / "client_only_model.py").write_text(
        "from dataclasses import dataclass\n"
        "from typing import ClassVar\n"
        "from pokewatch_plugins.baseline import BaselineMovingAverage\n"
        "@dataclass\n"
        "class Local(BaselineMovingAverage):\n"
        "    name: ClassVar[str] = 'client_only'\n"
    )
    sys.path.insert(0, str(package))
    try:
        from client_only_model import Local  # type: ignore[import-not-found]

        _, policy, metrics = resolve_components("baseline_moving_average", metrics=["rmse"])
        with pytest.raises(ConfigError) as caught:
            evaluate_on_dask(
                str(embedded_sample_path()),
                EvaluationSpec(Local(), policy, metrics),
                scheduler=scheduler,
                output_dir=tmp_path / "f",
            )
    finally:
        sys.path.remove(str(package))
        sys.modules.pop("client_only_model", None)
    message = str(caught.value)
    assert "model 'client_only' cannot be imported on dask worker tcp://127.0.0.1:" in message
    assert "No module named 'client_only_model'" in message and "\n" not in message
    assert not (tmp_path / "f").exists()


def test_bad_rows_in_a_partition_are_a_data_error_and_leave_no_dataset(scheduler, tmp_path):
    data = pd.read_parquet(embedded_sample_path())
    folder = tmp_path / "input"
    folder.mkdir()
    data.to_parquet(folder / "all.parquet")
    data.iloc[[100]].to_parquet(folder / "again.parquet")  # one row twice, in another file
    with pytest.raises(DataError, match="duplicate") as caught:
        on_dask(folder, scheduler, tmp_path / "f")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "f").exists()
    # a folder that was there stays, empty: no part written by a task still running when
    # the first one failed (many partitions, so that others are under way)
    given = tmp_path / "given"
    given.mkdir()
    with pytest.raises(DataError, match="duplicate"):
        on_dask(folder, scheduler, given, partitions=16)
    assert list(given.iterdir()) == []


def test_options_are_checked_before_connecting(tmp_path):
    spec = EvaluationSpec.build("baseline_moving_average")
    with pytest.raises(ConfigError, match="partitions must be a whole number >= 1"):
        evaluate_on_dask("x", spec, partitions=0, output_dir=tmp_path / "f")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="must be new or empty"):
        evaluate_on_dask("x", spec, output_dir=tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    from tests.conftest import free_port

    spec = EvaluationSpec.build("baseline_moving_average")
    with pytest.raises(ConfigError, match=r"cannot reach the dask scheduler at tcp://127\.0\.0\.1"):
        evaluate_on_dask(
            str(embedded_sample_path()),
            spec,
            scheduler=f"tcp://127.0.0.1:{free_port()}",
            output_dir=tmp_path / "f",
        )
    assert not (tmp_path / "f").exists()


def _run_record(store: str, run_id: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    run = client.get_run(run_id)
    files: list[str] = []
    pending = [""]
    while pending:
        for item in client.list_artifacts(run_id, pending.pop() or None):
            (pending.append(item.path) if item.is_dir else files.append(item.path))
    return client, run, sorted(files)


def test_train_on_dask_logs_the_local_run_with_a_partitioned_frame(
    run_cli, store, scheduler, tmp_path, monkeypatch
):
    """`pokewatch train --engine dask` against the same train on the local engine: the same
    metrics (1e-9), the same params plus engine and partitions, the same artifacts — the
    evaluation frame as a folder of parts written by the workers — and no model."""
    import re

    local = run_cli("train", "--tracking-uri", store)
    assert local.exit_code == 0, local.stderr
    evaluations = count_calls(monkeypatch, DaskEngine, "evaluate")
    frame_dir = tmp_path / "frame"
    remote = run_cli(
        "train", "--tracking-uri", store, "--engine", "dask", "--scheduler", scheduler,
        "--partitions", "3", "--frame-dir", str(frame_dir),
    )  # fmt: skip
    assert remote.exit_code == 0, remote.stderr
    assert evaluations == [1]  # through the front door: one engine.evaluate(spec)
    ids = [re.search(r"Run (\w+) logged", r.stdout).group(1) for r in (local, remote)]
    client, local_run, local_files = _run_record(store, ids[0])
    _, dask_run, dask_files = _run_record(store, ids[1])
    assert local_run.info.status == dask_run.info.status == "FINISHED"

    assert set(dask_run.data.metrics) == set(local_run.data.metrics)
    for name, value in local_run.data.metrics.items():
        assert same(dask_run.data.metrics[name], value), name
    assert dask_run.data.params == {**local_run.data.params, "engine": "dask", "partitions": "3"}

    parts = sorted(p.name for p in frame_dir.glob("part-*.parquet"))
    assert len(parts) == 3
    expected = [f for f in local_files if f != "tables/predictions.parquet"]
    expected += [f"tables/predictions/{name}" for name in parts]
    assert dask_files == sorted(expected)

    def table(run_id: str, path: str) -> pd.DataFrame:
        folder = client.download_artifacts(run_id, path, str(tmp_path / run_id))
        frame = pd.read_parquet(folder) if path.startswith("tables/predictions") else None
        frame = pd.read_csv(folder, dtype={"card_id": str}) if frame is None else frame
        return frame.sort_values(["card_id", *(["date"] if "date" in frame else [])])

    for local_path, dask_path in [
        ("tables/metrics_by_card.csv",) * 2,
        ("tables/predictions.parquet", "tables/predictions"),
    ]:
        a, b = table(ids[0], local_path), table(ids[1], dask_path)
        pd.testing.assert_frame_equal(
            a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False,
            check_categorical=False, rtol=1e-9,
        )  # fmt: skip
    summaries = [
        client.download_artifacts(i, "summary/evaluation_summary.txt", str(tmp_path / f"s{i}"))
        for i in ids
    ]
    assert Path(summaries[1]).read_text() == Path(summaries[0]).read_text()
    assert local_run.outputs.model_outputs and not dask_run.outputs.model_outputs


def test_evaluate_with_engine_dask_returns_a_result_like_the_local_one(scheduler, tmp_path):
    path = embedded_sample_path()
    local = evaluate("baseline_moving_average", path, test_start="2024-06-01")
    remote = evaluate(
        "baseline_moving_average", str(path), test_start="2024-06-01", engine="dask",
        scheduler=scheduler, partitions=2, output_dir=tmp_path / "frame",
    )  # fmt: skip
    assert not remote.in_memory and remote.frame_dir == tmp_path / "frame"
    assert remote.params == {**local.params, "engine": "dask", "partitions": 2}
    for name, value in local.metrics.items():
        assert same(remote.metrics[name], value), name
    assert remote.analyses.overview == local.analyses.overview
    pd.testing.assert_frame_equal(remote.analyses.by_card, local.analyses.by_card, rtol=1e-9)
    market, predicted = remote.price_pairs()  # the plots' bounded sample
    assert 0 < len(market) == len(predicted) <= 20_000
    assert np.isin(market, local.price_pairs()[0]).all()
    key = ["card_id", "date"]
    on_disk = remote.frame.sort_values(key, ignore_index=True)  # read on first use
    in_memory = local.frame.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(on_disk, in_memory, check_dtype=False, check_categorical=False)


def test_engine_options_are_checked(tmp_path):
    panel = pd.DataFrame(
        {"card_id": ["a", "a"], "date": ["2024-01-01", "2024-01-02"], "market_price": [1, 2]}
    )
    # a DataFrame is taken (test_a_pandas_or_dask_dataframe_as_data_gives_the_local_numbers)
    with pytest.raises(ConfigError, match=r"data must be a path .* or a pandas or dask DataFrame"):
        evaluate("baseline_moving_average", [panel], engine="dask")
    with pytest.raises(ConfigError, match="partitions needs engine='dask'"):
        evaluate("baseline_moving_average", panel, partitions=2)
    with pytest.raises(ConfigError, match="unknown engine 'spark'"):
        evaluate("baseline_moving_average", panel, engine="spark")


def test_the_readme_dask_command_as_printed(run_cli, store):
    from tests.test_documented_commands import code_blocks, commands

    block = next(b for b in code_blocks("README.md", "bash") if "sample-data" in b)
    (line,) = commands(block, "uv run --extra dask pokewatch")
    args = line.split()[5:]  # after "uv run --extra dask pokewatch"
    assert args[:3] == ["train", "--engine", "dask"]
    result = run_cli(*args, "--tracking-uri", store)
    assert result.exit_code == 0, result.stderr
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED"
    assert run.data.params["engine"] == "dask" and run.data.params["partitions"] == "4"


def test_sweep_on_dask_gives_the_local_sweep(run_cli, store, scheduler, tmp_path, monkeypatch):
    """`pokewatch sweep --engine dask`: one cluster for every combination, each child's
    metrics the local sweep's (1e-9), engine and partitions in each child's params; only the
    best trial's frame is kept in --frame-dir (the others are removed once scored)."""
    from mlflow.tracking import MlflowClient

    grid = ["-p", "window_size=3,5,7"]
    local = run_cli("sweep", *grid, "--tracking-uri", store, "--experiment-name", "local")
    evaluations = count_calls(monkeypatch, DaskEngine, "evaluate")
    frames = tmp_path / "frames"
    remote = run_cli(
        "sweep", *grid, "--tracking-uri", store, "--experiment-name", "dask", "--engine", "dask",
        "--scheduler", scheduler, "--partitions", "2", "--frame-dir", str(frames),
    )  # fmt: skip
    assert local.exit_code == 0, local.stderr
    assert remote.exit_code == 0, remote.stderr
    assert evaluations == [4]  # each combination, then the best again for its full child
    client = MlflowClient(tracking_uri=store)

    def children(experiment: str) -> dict[str, object]:
        exp = client.get_experiment_by_name(experiment)
        runs = client.search_runs([exp.experiment_id], "tags.`pokewatch.sweep` = 'child'")
        return {r.data.params["window_size"]: r for r in runs}

    on_local, on_dask = children("local"), children("dask")
    assert set(on_local) == set(on_dask) == {"3", "5", "7"}
    for size, run in on_local.items():
        other = on_dask[size]
        assert other.info.status == "FINISHED"
        assert other.data.params == {**run.data.params, "engine": "dask", "partitions": "2"}
        for name, value in run.data.metrics.items():
            assert same(other.data.metrics[name], value), (size, name)
    kept = [p for p in frames.iterdir()]
    assert len(kept) == 1 and list(kept[0].glob("part-*.parquet"))  # the best's, logged


def test_the_extra_installs_cleanly_in_a_fresh_environment(tmp_path):
    """`pokewatch[dask]` into a new, empty virtual environment (uv, from the checkout): the
    dask engine runs there on a LocalCluster and gives the local engine's numbers."""
    import os
    import shutil
    import subprocess

    uv = shutil.which("uv")
    assert uv, "uv is how the project is installed (README); CI installs it"
    env = tmp_path / "env"
    root = Path(__file__).resolve().parents[1]
    clean = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT")}
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(env)], env=clean, check=True)
    python = env / "bin" / "python"
    installed = subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), f"{root}[dask]"],
        env=clean, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    script = (
        "from pokewatch_core import evaluate, embedded_sample_path\n"
        "if __name__ == '__main__':\n"
        "    r = evaluate('baseline_moving_average', str(embedded_sample_path()),\n"
        "                 engine='dask', partitions=2, metrics=['rmse', 'strategy_sharpe'])\n"
        "    print(repr(r.metrics['rmse']), repr(r.metrics['strategy_sharpe']))\n"
    )
    (tmp_path / "run.py").write_text(script)
    ran = subprocess.run(
        [str(python), str(tmp_path / "run.py")], cwd=tmp_path, env=clean,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    rmse, sharpe = map(float, ran.stdout.split())
    local = evaluate("baseline_moving_average", embedded_sample_path(),
                     metrics=["rmse", "strategy_sharpe"])  # fmt: skip
    assert same(rmse, local.metrics["rmse"]) and same(sharpe, local.metrics["strategy_sharpe"])


def test_partitions_of_delisted_or_unpriced_cards_give_the_local_numbers(scheduler, tmp_path):
    """Many partitions, so that some hold only cards delisted before the test start (they
    still count in the MASE scale) or only cards that never had a price (refused alone, fine
    as part of a table with prices)."""
    panel = ragged_monthly_panel()
    unpriced = panel[panel["card_id"].isin(["TICK00", "TICK01", "TICK02"])].copy()
    unpriced["card_id"] = unpriced["card_id"].str.replace("TICK", "DARK")
    unpriced["market_price"] = np.nan
    pd.concat([panel, unpriced]).to_parquet(tmp_path / "stocks.parquet")
    for test_start in (None, "2023-06-30"):
        local = evaluate(
            "baseline_moving_average", tmp_path / "stocks.parquet", test_start=test_start
        )
        out = tmp_path / f"frame-{test_start}"
        remote = on_dask(tmp_path / "stocks.parquet", scheduler, out, test_start, partitions=40)
        assert_same_numbers(local, remote)
        assert_same_analyses(local.analyses, remote.analyses)


def test_every_file_must_hold_the_required_columns(scheduler, tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    panel = make_panel(cards=4, days=10)
    panel.iloc[:20].to_parquet(folder / "a.parquet")
    panel.iloc[20:].rename(columns={"market_price": "price"}).to_parquet(folder / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet: missing required column 'market_price'"):
        on_dask(folder, scheduler, tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_paths_and_addresses_are_checked_before_a_cluster_starts(tmp_path):
    panel = tmp_path / "input"
    panel.mkdir()
    make_panel().to_parquet(panel / "a.parquet")
    with pytest.raises(ConfigError, match="must not be inside the input"):
        on_dask(panel, "local", panel / "frame")
    with pytest.raises(ConfigError, match="not 'local' nor an address"):
        on_dask(panel, "foo", tmp_path / "f")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot create the evaluation frame's folder"):
        on_dask(panel, "local", blocker / "frame")
    with pytest.raises(DataError, match="no such file"):
        on_dask(tmp_path / "missing.parquet", "local", tmp_path / "g")
    assert not (tmp_path / "f").exists() and not (tmp_path / "g").exists()


def test_ctrl_c_during_a_dask_run_ends_it_with_nothing_half_written(tmp_path, store):
    """SIGINT to the whole process group, as Ctrl-C sends it, while the workers write parts:
    exit 130, one line, no run, the frame folder gone."""
    import os
    import signal
    import subprocess
    import time

    data = tmp_path / "panel.parquet"
    generate = subprocess.run(
        [sys.executable, "-m", "pokewatch_core", "sample-data", "--output", str(data),
         "--cards", "3000", "--days", "365"], capture_output=True, text=True,
    )  # fmt: skip
    assert generate.returncode == 0, generate.stderr
    frame = tmp_path / "frame"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pokewatch_core", "train", "--engine", "dask", "--partitions",
         "24", "--data-path", str(data), "--frame-dir", str(frame), "--tracking-uri", store],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(frame.glob("part-*.parquet")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "pokewatch: interrupted", err
    assert "Traceback" not in err
    assert all_runs(store) == []
    assert not frame.exists()


def test_a_dask_candidate_is_gated_against_a_local_champion(run_cli, store, scheduler, tmp_path):
    """The gate re-scores the champion on the candidate's data: a dask run's dataset digest
    (its rows' order-free hash) is recomputed the same way, so unchanged data passes."""
    import re

    data = tmp_path / "prices.parquet"
    pd.read_parquet(embedded_sample_path()).to_parquet(data)
    common = ["--data-path", str(data), "--tracking-uri", store]
    champion = run_cli(
        "train", *common, "-p", "window_size=5", "--register-model", "cards"
    )  # alias champion
    assert champion.exit_code == 0, champion.stderr
    candidate = run_cli(
        "train", *common, "-p", "window_size=3", "--engine", "dask", "--scheduler", scheduler,
        "--frame-dir", str(tmp_path / "frame"),
    )  # fmt: skip
    assert candidate.exit_code == 0, candidate.stderr
    run_id = re.search(r"Run (\w+) logged", candidate.stdout).group(1)
    gate = run_cli(
        "gate", "--candidate", run_id, "--champion", "models:/cards@champion",
        "--rule", "rmse<=champion", "--tracking-uri", store, "--json",
    )  # fmt: skip
    assert gate.exit_code == 0, gate.stderr
    import json

    report = json.loads(gate.stdout)
    local_rmse = evaluate("baseline_moving_average", data, params={"window_size": 5}).metrics
    assert same(report["rules"][0]["champion"], local_rmse["rmse"])
    pd.read_parquet(data).assign(market_price=lambda f: f["market_price"] * 1.01).to_parquet(data)
    changed = run_cli(
        "gate", "--candidate", run_id, "--champion", "models:/cards@champion",
        "--rule", "rmse<=champion", "--tracking-uri", store,
    )  # fmt: skip
    assert changed.exit_code == 2 and "has changed since run" in changed.stderr


def test_the_scaling_docs_python_examples_run_as_scripts(tmp_path):
    """docs/scaling.md's Python blocks, saved as scripts and run in a folder holding the
    prices/ folder of parquet files they name (each starts its own LocalCluster)."""
    import subprocess

    from tests.test_documented_commands import code_blocks

    blocks = [b for b in code_blocks("docs/scaling.md", "python") if "__main__" in b]
    assert len(blocks) == 2
    folder = tmp_path / "prices"
    folder.mkdir()
    data = pd.read_parquet(embedded_sample_path())
    cards = data["card_id"].unique()
    data[data["card_id"].isin(cards[:100])].to_parquet(folder / "a.parquet")
    data[data["card_id"].isin(cards[100:])].to_parquet(folder / "b.parquet")
    for number, block in enumerate(blocks):
        script = tmp_path / f"example_{number}.py"
        script.write_text(block)
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
            env={**__import__("os").environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "frame").glob("part-*.parquet"))  # the first: evaluate() into frame/
    kept = [p for p in (tmp_path / "frames").iterdir()]
    assert kept == []  # the second released each evaluation's frame


def test_run_sweep_on_the_dask_engine_from_python(scheduler, tmp_path):
    """`run_sweep(engine="dask")`: the library's sweep on one cluster gives the local sweep's
    trials (1e-9), and each trial's frame is released once scored."""
    import pokewatch_core as pw

    grid = {"window_size": [3, 5]}
    local = pw.run_sweep("baseline_moving_average", embedded_sample_path(), grid)
    frames = tmp_path / "frames"
    remote = pw.run_sweep(
        "baseline_moving_average", str(embedded_sample_path()), grid, engine="dask",
        scheduler=scheduler, partitions=2, frame_dir=frames,
    )  # fmt: skip
    assert [t.params for t in remote.trials] == [t.params for t in local.trials]
    for mine, theirs in zip(remote.trials, local.trials, strict=True):
        assert set(mine.metrics) == set(theirs.metrics)
        for name, value in theirs.metrics.items():
            assert same(mine.metrics[name], value), name
    assert remote.best.number == local.best.number
    assert list(frames.iterdir()) == []  # released as scored


BACKTESTS = [
    {"horizon": 7, "windows": 4, "step": 7},
    {"horizon": 3},
    {"horizon": 2, "test_start": "2025-11-01"},
    {"horizon": 4, "windows": 3, "step": 2, "input_size": 5, "refit": 2},
]


@pytest.mark.parametrize(
    "options", BACKTESTS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())
)
def test_a_backtest_gives_the_local_numbers(scheduler, tmp_path, options):
    """Per horizon, pooled and per cutoff: the partitions' merged states are the local
    figures (the cutoffs resolved on every partition's dates together)."""
    local = evaluate("baseline_moving_average", embedded_sample_path(), **options)
    remote = evaluate("baseline_moving_average", embedded_sample_path(), engine="dask",
                      scheduler=scheduler, partitions=5, output_dir=tmp_path / "f",
                      **options)  # fmt: skip
    assert_same_numbers(local, remote)
    assert remote.backtest is not None and local.backtest is not None
    assert remote.backtest.by_horizon.keys() == local.backtest.by_horizon.keys()
    pd.testing.assert_frame_equal(remote.backtest.by_cutoff, local.backtest.by_cutoff, rtol=1e-9)
    assert remote.params["first_cutoff"] == local.params["first_cutoff"]
    assert remote.params["cutoff_count"] == local.params["cutoff_count"]


def test_a_backtest_with_a_stateless_metric_is_refused_before_work(scheduler, tmp_path):
    from pokewatch_core.evaluation.cutoffs import BacktestOptions

    spec = EvaluationSpec.build(
        "baseline_moving_average", metrics=["rmse", MedianError], backtest=BacktestOptions(2)
    )
    with pytest.raises(ConfigError, match="a backtest on the dask engine needs every metric"):
        evaluate_on_dask(str(embedded_sample_path()), spec, scheduler=scheduler,
                         output_dir=tmp_path / "f")  # fmt: skip


def test_a_pandas_or_dask_dataframe_as_data_gives_the_local_numbers(scheduler, tmp_path):
    """Before: evaluate(..., engine="dask") took only paths."""
    import dask.dataframe as dd

    panel = make_panel(cards=12, days=30, seed=8, nan_rate=0.05, gap_rate=0.1)
    local = evaluate("baseline_moving_average", panel)
    for kind, data in (("pandas", panel), ("dask", dd.from_pandas(panel, npartitions=3))):
        remote = evaluate(
            "baseline_moving_average", data, engine="dask", scheduler=scheduler,
            output_dir=tmp_path / kind,
        )  # fmt: skip
        assert_same_numbers(local, remote)
    with pytest.raises(ConfigError, match="needs frame_dir"):
        DaskEngine(panel, scheduler="tcp://127.0.0.1:1")


def test_a_local_cluster_keeps_its_scratch_files_in_a_folder_it_removes():
    """Before: every dask run left a dask-scratch-space folder behind."""
    from distributed import Client

    from pokewatch_core.engines.dask_engine import local_scheduler

    with local_scheduler(workers=1) as address, Client(address) as client:
        (folder,) = set(client.run(lambda dask_worker: dask_worker.local_directory).values())
        scratch = Path(folder)
        while not scratch.name.startswith("pokewatch-dask-"):
            assert scratch != scratch.parent, folder
            scratch = scratch.parent
        assert scratch.is_dir()
    assert not scratch.exists()


def test_a_dask_candidate_trained_on_a_folder_or_a_glob_is_gated(
    run_cli, store, scheduler, tmp_path
):
    """Before: refused ("which is not a file here"): the gate read only single files."""
    import re

    data = pd.read_parquet(embedded_sample_path())
    folder = tmp_path / "prices"
    folder.mkdir()
    cards = data["card_id"].unique()
    data[data["card_id"].isin(cards[:100])].to_parquet(folder / "a.parquet")
    data[data["card_id"].isin(cards[100:])].to_parquet(folder / "b.parquet")
    whole = tmp_path / "whole.parquet"
    data.to_parquet(whole)
    champion = run_cli(
        "train", "--data-path", str(whole), "--tracking-uri", store, "--register-model", "cards",
        "-p", "window_size=5",
    )  # fmt: skip
    assert champion.exit_code == 0, champion.stderr
    for source in (str(folder), str(folder / "*.parquet")):
        candidate = run_cli(
            "train", "--data-path", source, "--tracking-uri", store, "--engine", "dask",
            "--scheduler", scheduler, "--frame-dir", str(tmp_path / f"frame-{len(source)}"),
        )  # fmt: skip
        assert candidate.exit_code == 0, candidate.stderr
        run_id = re.search(r"Run (\w+) logged", candidate.stdout).group(1)
        gate = run_cli(
            "gate", "--candidate", run_id, "--champion", "models:/cards@champion",
            "--rule", "rmse<=2*champion", "--tracking-uri", store,
        )  # fmt: skip
        assert gate.exit_code == 0, (source, gate.stderr)
