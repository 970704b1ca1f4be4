"""`pokewatch features` on the real snapshots vendored in tests/data/raw, and its errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED_DATA, all_runs

SNAPSHOTS = sorted(SHARED_DATA.glob("sv2a_pokemon_card_151_prices_*.parquet"))


@pytest.fixture(autouse=True)
def _real_snapshots_present() -> None:
    assert len(SNAPSHOTS) == 3, f"expected the three real snapshots in {SHARED_DATA}"


@pytest.fixture
def processed(run_cli, tmp_path) -> pd.DataFrame:
    out = tmp_path / "processed.parquet"
    result = run_cli("features", "--raw-dir", str(SHARED_DATA), "--output", str(out))
    assert result.exit_code == 0, result.stderr
    return pd.read_parquet(out)


def test_real_snapshots_combine_into_30_sorted_rows(processed):
    assert len(processed) == 30
    assert processed["card_id"].nunique() == 10
    keys = list(zip(processed["card_id"], processed["date"], strict=True))
    assert keys == sorted(keys)
    raw = pd.concat([pd.read_parquet(p) for p in SNAPSHOTS])
    merged = processed.merge(raw, on=["card_id", "date"], suffixes=("", "_raw"))
    assert len(merged) == 30
    np.testing.assert_array_equal(merged["market_price"], merged["market_price_raw"])
    assert (merged["card_name"] == merged["card_name_raw"]).all()


def test_derived_columns_by_hand(processed):
    # Alakazam ex: 50.43 (23rd), 50.58 (24th), 50.75 (29th, after a 5-day gap)
    card = processed[processed["card_id"] == "sv2a_151_alakazam_ex___203_165"]
    assert card["market_price"].tolist() == [50.43, 50.58, 50.75]
    np.testing.assert_allclose(card["lag_1"], [np.nan, 50.43, 50.58])
    np.testing.assert_allclose(card["price_return_1d"], [np.nan, np.nan, 50.58 / 50.43 - 1])
    np.testing.assert_allclose(card["rolling_mean_3"], [np.nan, 50.43, (50.43 + 50.58) / 2])
    np.testing.assert_allclose(card["rolling_mean_5"], [np.nan, 50.43, (50.43 + 50.58) / 2])


def test_features_use_only_earlier_days(processed, tmp_path, run_cli):
    """Changing the last day's prices changes no feature of any row."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in SNAPSHOTS:
        frame = pd.read_parquet(path)
        if "2025-11-29" in path.name:
            frame["market_price"] = frame["market_price"] * 3
        frame.to_parquet(raw / path.name)
    out = tmp_path / "changed.parquet"
    assert run_cli("features", "--raw-dir", str(raw), "--output", str(out)).exit_code == 0
    changed = pd.read_parquet(out)
    for column in ("lag_1", "price_return_1d", "rolling_mean_3", "rolling_mean_5"):
        np.testing.assert_array_equal(changed[column], processed[column])


def test_train_accepts_the_processed_table(run_cli, store, tmp_path):
    out = tmp_path / "processed.csv"
    assert run_cli("features", "--raw-dir", str(SHARED_DATA), "--output", str(out)).exit_code == 0
    result = run_cli("train", "--data-path", str(out), "--tracking-uri", store)
    assert result.exit_code == 0, result.stderr
    (run,) = all_runs(store)
    # 10 cards x 3 days, the first day of each card has no history
    assert run.data.metrics["dataset_size"] == 20


def test_module_entry_point(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "m.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pokewatch_core.data.features",
            "--raw-dir",
            str(SHARED_DATA),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_parquet(out)) == 30


def _raw_copy(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in SNAPSHOTS:
        shutil.copy(path, raw / path.name)
    return raw


def _date_mismatch(raw: Path) -> None:
    path = raw / SNAPSHOTS[1].name
    frame = pd.read_parquet(path)
    frame.loc[4, "date"] = pd.Timestamp("2025-11-25")
    frame.to_parquet(path)


def _conflict(raw: Path) -> None:
    frame = pd.read_parquet(raw / SNAPSHOTS[0].name)
    frame["market_price"] = frame["market_price"] + 1
    frame.to_csv(raw / SNAPSHOTS[0].name.replace(".parquet", ".csv"), index=False)


def _no_snapshots(raw: Path) -> None:
    for path in raw.iterdir():
        path.rename(path.with_name("notes_" + path.name.replace("_prices_", "_")))


def _bad_price(raw: Path) -> None:
    path = raw / SNAPSHOTS[2].name
    frame = pd.read_parquet(path)
    frame.loc[3, "market_price"] = -1.0
    frame.to_parquet(path)


def _two_sets(raw: Path) -> None:
    shutil.copy(raw / SNAPSHOTS[0].name, raw / "sv3_other_prices_2025-11-23.parquet")


def _impossible_date(raw: Path) -> None:  # before: a DateParseError traceback line, exit 1
    shutil.copy(raw / SNAPSHOTS[0].name, raw / "sv2a_pokemon_card_151_prices_2025-13-45.parquet")


FEATURE_CASES = {
    "a file name's date is no calendar date": (_impossible_date, "2025-13-45 is no calendar date"),
    "date column disagrees with file name": (_date_mismatch, "disagrees with the file name's date"),
    "two snapshots disagree": (_conflict, "but"),
    "no snapshots": (_no_snapshots, "no snapshot files"),
    "bad price in one snapshot": (_bad_price, "negative price"),
    "several sets": (_two_sets, "choose one with --set-name"),
}


@pytest.mark.parametrize("case", list(FEATURE_CASES))
def test_features_rejects_bad_snapshots_and_writes_nothing(case, run_cli, tmp_path):
    spoil, needle = FEATURE_CASES[case]
    raw = _raw_copy(tmp_path)
    spoil(raw)
    out = tmp_path / "out" / "processed.parquet"
    out.parent.mkdir()
    result = run_cli("features", "--raw-dir", str(raw), "--output", str(out))
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert list(out.parent.iterdir()) == []


def test_conflict_message_names_both_files(run_cli, tmp_path):
    raw = _raw_copy(tmp_path)
    _conflict(raw)
    result = run_cli("features", "--raw-dir", str(raw), "--output", str(tmp_path / "o.parquet"))
    assert "prices_2025-11-23.csv" in result.stderr
    assert "prices_2025-11-23.parquet" in result.stderr


def test_missing_raw_dir(run_cli, tmp_path):
    result = run_cli("features", "--raw-dir", str(tmp_path / "nope"), "--output", "x.parquet")
    assert result.exit_code == 2 and "no such directory" in result.stderr


def test_csv_snapshot_ids_stay_text(run_cli, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for day, prices in (("2025-01-01", (1.0, 2.0, 3.0)), ("2025-01-02", (1.5, 2.5, 3.5))):
        rows = "".join(
            f"{card},{day},{price}\n"
            for card, price in zip(("1", "01", "007"), prices, strict=True)
        )
        (raw / f"test_prices_{day}.csv").write_text("card_id,date,market_price\n" + rows)
    out = tmp_path / "processed.csv"
    result = run_cli("features", "--raw-dir", str(raw), "--output", str(out))
    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(out, dtype={"card_id": str})
    assert sorted(table["card_id"].unique()) == ["007", "01", "1"]
    assert table.loc[table["date"] == "2025-01-02", "lag_1"].tolist() == [3.0, 2.0, 1.0]


def test_a_bad_name_in_another_set_does_not_block_the_chosen_one(run_cli, tmp_path):
    raw = _raw_copy(tmp_path)
    shutil.copy(raw / SNAPSHOTS[0].name, raw / "sv3_other_prices_2025-13-45.parquet")
    out = tmp_path / "processed.parquet"
    set_name = SNAPSHOTS[0].name.split("_prices_")[0]
    result = run_cli(
        "features", "--raw-dir", str(raw), "--output", str(out), "--set-name", set_name
    )
    assert result.exit_code == 0, result.stderr
