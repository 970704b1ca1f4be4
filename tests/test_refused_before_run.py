"""Everything refused before a run starts: exit 2, one line on stderr, no traceback, no run,
nothing written. Each case failed differently before (a hang, a FAILED run after a full
evaluation, an OverflowError, a silently guessed date, an overwritten input)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import all_runs, make_panel

EXE = Path(sys.executable).with_name("pokewatch")


def _panel(directory: Path) -> Path:
    path = directory / "small.csv"
    make_panel(cards=3, days=8, seed=1).to_csv(path, index=False)
    return path


def _refused(result, store: str, needle: str) -> None:
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert all_runs(store) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-p", "window_size=1000000000000"], "window_size must be between 1 and 1000000"),
        (["-p", "window_size=10000000000000000000"], "window_size must be between 1 and"),
        (["-p", "window_size=1e19"], "window_size"),
        (["-p", "buy_threshold_pct=nan"], "buy_threshold_pct must be a finite number"),
        (["-p", "sell_threshold_pct=inf"], "sell_threshold_pct must be a finite number"),
        (["-p", "buy_threshold_pct=1"], "buy_threshold_pct must be below 1"),
        (["--register-model", "a/b"], "Invalid model name 'a/b'"),
        (["--register-model", "  "], "--register-model"),
        (["--register-model", "m", "--alias", "bad alias!"], "alias"),
        (["--alias", "prod"], "--alias needs --register-model"),
        (["--experiment-name", ""], "--experiment-name must not be empty"),
        (["--data-path", ""], "--data-path must not be empty"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --engine dask"),
        (["--partitions", "4"], "--partitions needs --engine dask"),
        (["--engine", "dask", "--partitions", "0"], "--partitions"),
        # before: still running after 60 s
        (["--engine", "dask", "--partitions", "1000000000"], "at most 100,000"),
        (["--engine", "dask", "--register-model", "m"], "--register-model needs --engine local"),
        (["--engine", "dask", "--id-col", "sku"], "need --engine local"),
        (["--engine", "dask", "--scheduler", "tcp://127.0.0.1:1"], "--frame-dir is needed"),
        (["--engine", "spark"], "--engine"),
        (["--test-start", " "], "--test-start"),  # before: silently no split
        (["--tag", "pokewatch.gate=pass"], "tag 'pokewatch.gate' is reserved"),
        (["--tag", "MLflow.parentRunId=x"], "tag 'MLflow.parentRunId' is reserved"),
        # before: accepted, then a raw SQL error on a PostgreSQL store after the evaluation
        (["--tag", "k" * 251 + "=v"], "251 characters (at most 250)"),
        (["--tag", "k=" + "v" * 8001], "8,001 characters (at most 8,000)"),
        (["--run-name", "r" * 251], "--run-name: 251 characters (at most 250"),
        (["--experiment-name", "e" * 257], "--experiment-name: 257 characters (at most 256"),
    ],
)
def test_bad_values_are_refused_before_the_run(args, needle, run_cli, store, tmp_path):
    data = [] if "--data-path" in args else ["--data-path", str(_panel(tmp_path))]
    result = run_cli("train", "--tracking-uri", store, *data, *args)
    _refused(result, store, needle)


def test_unknown_tracking_uri_scheme_is_refused_before_evaluation(run_cli, store, tmp_path):
    result = run_cli("train", "--tracking-uri", "foo://bar", "--data-path", str(_panel(tmp_path)))
    _refused(result, store, "unsupported tracking URI scheme 'foo'")
    assert list(tmp_path.glob("pokewatch-failed-runs")) == []


def test_window_larger_than_any_history_costs_no_more_than_the_whole_history():
    """Before: the as-of window mean looped `window` times: 10**12 never returned."""
    from pokewatch_core import PriceIndex

    panel = make_panel(cards=5, days=40, seed=3)
    index = PriceIndex.build(panel)
    at = panel[["card_id", "date"]].copy()
    at["card_id"] = at["card_id"].astype(str)  # not the history's own rows: the general path
    pos, count = index.locate(at)
    longest = int(count.max())
    exact = index.window_mean(pos, count, longest)
    started = time.perf_counter()
    huge = index.window_mean(pos, count, 10**12)
    assert time.perf_counter() - started < 1.0
    np.testing.assert_array_equal(huge, exact)


def _write_nested(path: Path, column: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = make_panel(cards=2, days=4, seed=2)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if column == "card_id":
        values = pa.array([[c] for c in frame["card_id"]])
    elif column == "market_price":
        values = pa.array([{"usd": float(p)} for p in frame["market_price"]])
    else:
        values = pa.array([[1, 2]] * len(frame))
    i = table.schema.get_field_index(column)
    table = table.set_column(i, column, values) if i >= 0 else table.append_column(column, values)
    pq.write_table(table.replace_schema_metadata(None), path)  # as other writers do


@pytest.mark.parametrize("column", ["card_id", "market_price"])
def test_nested_required_column_is_refused_at_validation(column, run_cli, store, tmp_path):
    path = tmp_path / "nested.parquet"
    _write_nested(path, column)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(path))
    _refused(result, store, f"column '{column}': nested values")


def test_nested_carried_column_is_dropped_and_the_run_completes(run_cli, store, tmp_path):
    path = tmp_path / "nested.parquet"
    _write_nested(path, "tags")
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(path))
    assert result.exit_code == 0, result.stderr
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED"


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_fifo_is_refused_at_once(tmp_path):
    """Before: `train` blocked forever opening a FIFO named .csv."""
    fifo = tmp_path / "prices.csv"
    os.mkfifo(fifo)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = subprocess.run(
        [str(EXE), "train", "--tracking-uri", uri, "--data-path", str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert all_runs(uri) == []


def test_device_and_symlink_loop_are_refused(run_cli, store, tmp_path):
    _refused(
        run_cli("train", "--tracking-uri", store, "--data-path", "/dev/null"),
        store,
        "not a regular file",
    )
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    _refused(
        run_cli("train", "--tracking-uri", store, "--data-path", str(loop)),
        store,
        "symlink loop",
    )


@pytest.mark.parametrize("day", ["3000-01-01", "1600-06-30"])
def test_dates_outside_the_supported_range_are_refused(day, run_cli, store, tmp_path):
    """Before: a year-3000 parquet table trained, and the model answered with dates in 1830."""
    frame = make_panel(cards=2, days=3, seed=1)
    frame["date"] = frame["date"].astype("datetime64[s]")
    frame.loc[1, "date"] = np.datetime64(day, "s")
    path = tmp_path / "far.parquet"
    frame.to_parquet(path)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(path))
    _refused(result, store, "outside the supported range 1677-09-22 to 2262-04-11")
    text = tmp_path / "far.csv"
    frame.astype({"date": str}).to_csv(text, index=False)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(text))
    _refused(result, store, "outside the supported range 1677-09-22 to 2262-04-11")


def test_mixed_date_formats_are_refused_with_an_example_of_each(run_cli, store, tmp_path):
    """Before: the non-ISO values were guessed (01/04/2025 read as January 4th)."""
    path = tmp_path / "mixed.csv"
    pd.DataFrame(
        {
            "card_id": ["a", "a", "b"],
            "date": ["2025-01-04", "01/05/2025", "2025-01-04"],
            "market_price": [1.0, 2.0, 3.0],
        }
    ).to_csv(path, index=False)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(path))
    _refused(result, store, "mixed date formats")
    assert "'2025-01-04' at row 1" in result.stderr and "'01/05/2025' at row 2" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seed", "-5"], "--seed"),
        (["--cards", "1000000000", "--days", "10000"], "estimated memory"),
    ],
)
def test_sample_data_refuses_bad_sizes_and_seeds(args, needle, run_cli, tmp_path):
    """Before: --seed -5 was a ValueError traceback and 10**13 rows exhausted the machine."""
    out = tmp_path / "sample.parquet"
    result = run_cli("sample-data", "--output", str(out), *args)
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr
    assert not out.exists()


def _snapshots(directory: Path) -> Path:
    raw = directory / "raw"
    raw.mkdir()
    for day in ("2025-11-23", "2025-11-24"):
        pd.DataFrame(
            {"card_id": ["a", "b"], "date": [day, day], "market_price": [1.0, 2.0]}
        ).to_parquet(raw / f"sv2a_prices_{day}.parquet")
    return raw


@pytest.mark.parametrize("where", ["snapshot", "inside", "directory"])
def test_features_output_never_lands_on_its_input(where, run_cli, tmp_path):
    """Before: --output naming a snapshot overwrote it with the processed table."""
    raw = _snapshots(tmp_path)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    output = {
        "snapshot": raw / "sv2a_prices_2025-11-23.parquet",
        "inside": raw / "processed.parquet",
        "directory": tmp_path,
    }[where]
    result = run_cli("features", "--raw-dir", str(raw), "--output", str(output))
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


def test_served_model_refuses_request_dates_outside_the_range_clearly():
    """Before: a request dated 3000-01-01 raised pandas' OutOfBoundsDatetime."""
    from pokewatch_core import evaluate
    from pokewatch_core.errors import DataError
    from pokewatch_core.tracking.fair_price import FairPricer

    result = evaluate("baseline_moving_average", make_panel(cards=2, days=5, seed=1))
    pricer = FairPricer(result.model, result.policy, result.frame)
    card = str(result.frame["card_id"].iloc[0])
    with pytest.raises(DataError, match="outside the supported range 1677-09-22 to 2262-04-11"):
        pricer.predict(pd.DataFrame({"card_id": [card], "date": ["3000-01-01"]}))
    answer = pricer.predict(pd.DataFrame({"card_id": [card], "date": ["2025-01-04"]}))
    assert answer["fair_price"].notna().all()


@pytest.mark.slow
def test_mlflow_run_without_data_path_still_uses_the_embedded_sample(tmp_path):
    """MLproject's empty default data_path must not become the refused `--data-path ''`."""
    uri = f"sqlite:///{tmp_path / 'project.db'}"
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, PATH=f"{bin_dir}:{os.environ['PATH']}")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [str(bin_dir / "mlflow"), "run", str(root), "-e", "train", "--env-manager", "local"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the evaluation (beside the Projects run, which mlflow run put in Default)
    (run,) = [r for r in all_runs(uri) if "dataset_size" in r.data.metrics]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["dataset_size"] > 10_000  # the whole embedded sample


def test_reserved_tags_are_refused_by_the_library_and_sweep(run_cli, store, tmp_path):
    import pokewatch_core as pw
    from pokewatch_core.errors import ConfigError
    from pokewatch_core.tracking.log import log_evaluation

    result = pw.evaluate("baseline_moving_average", make_panel(cards=2, days=5, seed=1))
    with pytest.raises(ConfigError, match="reserved"):
        log_evaluation(result, tracking_uri=store, tags={"pokewatch.abandoned": "x"})
    out = run_cli(
        "sweep", "--tracking-uri", store, "--data-path", str(_panel(tmp_path)),
        "-p", "window_size=2,3", "--tag", "pokewatch.x=1",
    )  # fmt: skip
    _refused(out, store, "tag 'pokewatch.x' is reserved")


@pytest.mark.parametrize(
    ("uri", "needle", "code"),
    [
        ("./mlruns", "is a file store, which MLflow 3 refuses", 2),
        ("file:///tmp/pokewatch-nowhere", "is a file store", 2),
        ("sqlite:////dev/null", "is not a regular file", 2),
        # a server that is down is no usage error: exit 1, as an HTTP server that does not answer
        ("postgresql://u:p@127.0.0.1:1/db", "cannot reach the tracking database at 127.0.0.1:1", 1),
    ],
)
def test_stores_mlflow_refuses_late_or_retries_on_are_refused_at_once(
    uri, needle, code, run_cli, tmp_path
):
    """Before: a file store failed with exit 1 after MLflow's 600-character message, a
    folder or device as SQLite database and a closed database port retried for minutes."""
    started = time.perf_counter()
    result = run_cli("train", "--tracking-uri", uri, "--data-path", str(_panel(tmp_path)))
    assert result.exit_code == code, result.stderr
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - started < 30
    assert list(tmp_path.glob("pokewatch-failed-runs")) == []


def test_a_folder_as_sqlite_database_is_refused_at_once(run_cli, tmp_path):
    result = run_cli("train", "--tracking-uri", f"sqlite:///{tmp_path}", "--data-path",
                     str(_panel(tmp_path)))  # fmt: skip
    assert result.exit_code == 2 and "is a folder" in result.stderr, result.stderr


@pytest.mark.parametrize("command", [["compare"], ["compare", "abc123"]])
def test_reading_commands_refuse_a_missing_store_without_creating_it(command, run_cli, tmp_path):
    db = tmp_path / "none.db"
    result = run_cli(*command, "--tracking-uri", f"sqlite:///{db}")
    assert result.exit_code == 2 and "no tracking store at" in result.stderr, result.stderr
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["compare", "--limit", "50001"], "--limit"),
        (["compare", "--tracking-uri", "foo://x"], "unsupported tracking URI scheme 'foo'"),
        (["gate", "--candidate", "abc", "--champion", "models:/m@champion", "--rule",
          "rmse<=champion", "--tracking-uri", "foo://x"], "unsupported tracking URI scheme"),
    ],
)  # fmt: skip
def test_reading_commands_refuse_bad_options_with_exit_2(args, needle, run_cli):
    result = run_cli(*args)
    assert result.exit_code == 2 and needle in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_fifo_is_refused_by_the_dask_engine_too(run_cli, store, tmp_path):
    """Before: the local engine refused it, the dask engine's workers waited for a writer."""
    fifo = tmp_path / "prices.parquet"
    os.mkfifo(fifo)
    result = run_cli("train", "--tracking-uri", store, "--engine", "dask", "--data-path", str(fifo))
    _refused(result, store, "not a regular file (a FIFO)")
