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

from pokewatch_core import ConfigError, DataError, Metric, embedded_sample_path, evaluate
from pokewatch_core.dask_engine import evaluate_on_dask
from pokewatch_core.evaluation import resolve_components

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


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def on_dask(data, scheduler, out: Path, test_start=None, metrics=None, **options):
    model, policy, built = resolve_components("baseline_moving_average", metrics=metrics)
    return evaluate_on_dask(
        str(data), model, policy, built, test_start, scheduler=scheduler, output_dir=out, **options
    )


def assert_same_numbers(local, remote) -> None:
    assert list(remote.metrics) == list(local.metrics)
    for name, value in local.metrics.items():
        assert same(remote.metrics[name], value), (name, remote.metrics[name], value)


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
                Local(),
                policy,
                metrics,
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


def test_options_are_checked_before_connecting(tmp_path):
    model, policy, metrics = resolve_components("baseline_moving_average")
    with pytest.raises(ConfigError, match="partitions must be at least 1"):
        evaluate_on_dask("x", model, policy, metrics, partitions=0, output_dir=tmp_path / "f")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="must be new or empty"):
        evaluate_on_dask("x", model, policy, metrics, output_dir=tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    from tests.conftest import free_port

    model, policy, metrics = resolve_components("baseline_moving_average")
    with pytest.raises(ConfigError, match=r"cannot reach the dask scheduler at tcp://127\.0\.0\.1"):
        evaluate_on_dask(
            str(embedded_sample_path()),
            model,
            policy,
            metrics,
            scheduler=f"tcp://127.0.0.1:{free_port()}",
            output_dir=tmp_path / "f",
        )
    assert not (tmp_path / "f").exists()
