"""Bad input: exit code 2, exactly one line on stderr naming the problem, no traceback, no
MLflow run, and (for features) no output file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import pokewatch_core
from tests.conftest import all_runs

GOOD = pd.DataFrame(
    {
        "card_id": ["a", "a", "b", "b"],
        "date": ["2025-01-01", "2025-01-02", "2025-01-01", "2025-01-02"],
        "market_price": [1.0, 1.5, 10.0, 11.0],
    }
)


def csv(frame: pd.DataFrame, **kw) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        path = d / "prices.csv"
        frame.to_csv(path, index=False, **kw)
        return path

    return write


def parquet(frame: pd.DataFrame) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        path = d / "prices.parquet"
        frame.to_parquet(path, index=False)
        return path

    return write


def raw(text: bytes, name: str) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        path = d / name
        path.write_bytes(text)
        return path

    return write


def truncated_parquet(d: Path) -> Path:
    full = parquet(GOOD)(d)
    data = full.read_bytes()
    full.write_bytes(data[: len(data) // 2])
    return full


def with_value(column: str, row: int, value: object) -> pd.DataFrame:
    frame = GOOD.copy().astype({column: object})
    frame.loc[row, column] = value
    return frame


CASES: dict[str, tuple[Callable[[Path], Path], list[str], str]] = {
    "missing file": (lambda d: d / "nope.parquet", [], "no such file"),
    "directory": (lambda d: d, [], "is a directory"),
    "truncated parquet": (truncated_parquet, [], "cannot read parquet"),
    "not parquet at all": (raw(b"hello world, not parquet", "prices.parquet"), [], "parquet"),
    "wrong delimiter": (csv(GOOD, sep=";"), [], "delimited by ';'"),
    "missing column": (
        csv(GOOD.drop(columns="market_price")),
        [],
        "missing required column 'market_price'",
    ),
    "unparsable date": (
        csv(with_value("date", 2, "not-a-date")),
        [],
        "unparsable date 'not-a-date'",
    ),
    "missing date": (csv(with_value("date", 1, None)), [], "missing date"),
    "mixed time zones": (
        csv(
            GOOD.assign(
                date=[
                    "2025-01-01T00:00:00+00:00",
                    "2025-01-02T00:00:00+02:00",
                    "2025-01-01T00:00:00+00:00",
                    "2025-01-02T00:00:00+00:00",
                ]
            )
        ),
        [],
        "mixed time zones",
    ),
    "non-numeric price": (csv(with_value("market_price", 3, "ten")), [], "non-numeric price 'ten'"),
    "zero price": (csv(with_value("market_price", 0, 0.0)), [], "zero price"),
    "negative price": (csv(with_value("market_price", 1, -3.0)), [], "negative price -3"),
    "infinite price": (
        parquet(with_value("market_price", 2, float("inf")).astype({"market_price": float})),
        [],
        "infinite price",
    ),
    "duplicate card and date": (
        csv(pd.concat([GOOD, GOOD.iloc[[1]]])),
        [],
        "duplicate (card_id, date)",
    ),
    "empty table": (raw(b"card_id,date,market_price\n", "prices.csv"), [], "empty table"),
    "empty file": (raw(b"", "prices.csv"), [], "empty table"),
    "all prices missing": (
        csv(GOOD.assign(market_price=float("nan"))),
        [],
        "all prices are missing",
    ),
    "blank card id": (csv(with_value("card_id", 2, "   ")), [], "empty or whitespace card id"),
    "missing card id": (parquet(with_value("card_id", 0, None)), [], "missing card id"),
    "mapping names a missing column": (
        csv(GOOD),
        ["--id-col", "unique_id"],
        "'unique_id' given with --id-col not found",
    ),
    "unsupported suffix": (raw(b"x", "prices.xlsx"), [], "unsupported file type"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_train_rejects_bad_input_cleanly(case, run_cli, store, tmp_path):
    make, extra, needle = CASES[case]
    data_dir = tmp_path / "in"
    data_dir.mkdir()
    path = make(data_dir)
    result = run_cli("train", "--data-path", str(path), "--tracking-uri", store, *extra)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert all_runs(store) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "nope"], "unknown model 'nope' (valid: baseline_moving_average"),
        (["--policy", "nope"], "unknown policy 'nope' (valid: threshold"),
        (["--metric", "nope"], "unknown metric 'nope'"),
        (["-p", "windw=3"], "unknown parameter 'windw' (valid:"),
        (["-p", "window_size=abc"], "expects int"),
        (["-p", "novalue"], "expected KEY=VALUE"),
        (["--test-start", "soon"], "cannot parse 'soon'"),
        (["--bogus"], "No such option"),
    ],
)
def test_train_rejects_bad_usage_cleanly(args, needle, run_cli, store):
    result = run_cli("train", "--tracking-uri", store, *args)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr
    assert all_runs(store) == []


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        # one reading fits every value: day-first here, whatever the first value suggests
        (["10/01/2025", "11/01/2025", "13/01/2025"], ["2025-01-10", "2025-01-11", "2025-01-13"]),
        (["01/02/2025", "01/03/2025", "13/03/2025"], ["2025-02-01", "2025-03-01", "2025-03-13"]),
        (["Jan 5 2025", "Jan 6 2025"], ["2025-01-05", "2025-01-06"]),
    ],
)
def test_non_iso_dates_are_read_one_way_for_the_whole_column(dates, expected, tmp_path):
    path = tmp_path / "d.csv"
    rows = "".join(f"a,{d},1\n" for d in dates)
    path.write_text("card_id,date,market_price\n" + rows)
    table = pokewatch_core.load_prices(path)
    assert [d.date().isoformat() for d in table["date"]] == expected


def test_an_ambiguous_day_month_order_is_refused(run_cli, store, tmp_path):
    path = tmp_path / "amb.csv"
    path.write_text("card_id,date,market_price\na,01/02/2025,1\na,01/03/2025,1\n")
    out = run_cli("train", "--data-path", str(path), "--tracking-uri", store)
    assert out.exit_code == 2
    assert "ambiguous day/month order ('01/02/2025' reads as 2025-01-02 or 2025-02-01)" in (
        out.stderr
    )


def test_columns_the_evaluation_adds_are_refused_in_the_input(run_cli, store, tmp_path):
    path = tmp_path / "collide.csv"
    path.write_text("card_id,date,market_price,signal\na,2025-01-01,1,BUY\na,2025-01-02,1,\n")
    out = run_cli("train", "--data-path", str(path), "--tracking-uri", store)
    assert out.exit_code == 2
    assert out.stderr.strip() == (
        f"pokewatch: error: {path}: column 'signal' is reserved for the evaluation's output "
        "(rename or drop it)"
    )
    assert all_runs(store) == []


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_a_steady_price_rise_trains(run_cli, store, tmp_path):
    """Errors that differ only by rounding (each 0.1 off) must not break the error plot."""
    path = tmp_path / "steady.csv"
    rows = "".join(f"a,2025-01-{d:02d},{1 + d / 10:.2f}\n" for d in range(1, 11))
    path.write_text("card_id,date,market_price\n" + rows)
    out = run_cli("train", "--data-path", str(path), "-p", "window_size=1", "--tracking-uri", store)
    assert out.exit_code == 0, out.stderr
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED"
