"""The synthetic panel generator and the embedded sample."""

from __future__ import annotations

import pandas as pd
import pytest

from pokewatch_core import embedded_sample_path, generate_prices, load_prices
from pokewatch_core.data.sample_data import TIERS


def test_deterministic_for_a_seed():
    a = generate_prices(cards=30, days=20, seed=4)
    b = generate_prices(cards=30, days=20, seed=4)
    c = generate_prices(cards=30, days=20, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a["market_price"].equals(c["market_price"])


@pytest.mark.parametrize(("cards", "days"), [(1, 1), (7, 30), (250, 12)])
def test_requested_size_and_valid_prices(cards, days):
    frame = generate_prices(cards=cards, days=days, seed=1)
    assert frame["card_id"].nunique() == cards
    assert frame["date"].nunique() <= days
    assert frame["date"].max() - frame["date"].min() <= pd.Timedelta(days=days - 1)
    # about 3% of card-days are missing, so rows <= cards x days
    assert cards <= len(frame) <= cards * days
    prices = frame["market_price"].dropna()
    assert (prices > 0).all()
    load_prices_ok = frame.copy()
    from pokewatch_core import prepare_prices

    prepare_prices(load_prices_ok)  # validates as docs/user-guide.md says


def test_embedded_sample_is_a_realistic_whole_set_panel():
    frame = load_prices(embedded_sample_path())
    assert frame["card_id"].nunique() >= 150
    assert frame["date"].nunique() >= 180
    assert set(frame["rarity"].unique()) == set(TIERS)
    medians = frame.groupby("rarity", observed=True)["market_price"].median()
    assert medians["Common"] < 0.5
    assert medians["Special Art Rare"] > 50
    assert frame["market_price"].max() > 100
    assert frame["market_price"].isna().any()  # some unknown prices
    per_card_days = frame.groupby("card_id").size()
    assert (per_card_days < frame["date"].nunique()).any()  # missing days


def test_sample_data_bad_options_are_usage_errors(run_cli, tmp_path):
    out = tmp_path / "x.parquet"
    (tmp_path / "a_file").write_text("")
    for args in (
        ["--end", "someday"],
        ["--cards", "0"],
        ["--output", str(tmp_path / "a_file" / "dir.csv")],  # a folder that cannot be made
        ["--id-col", "date"],  # two columns with one name
    ):
        result = run_cli("sample-data", "--output", str(out), *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_sample_data_command(run_cli, tmp_path):
    out = tmp_path / "new" / "folder" / "panel.csv"  # missing folders are created
    result = run_cli("sample-data", "--output", str(out), "--cards", "12", "--days", "9")
    assert result.exit_code == 0, result.stderr
    frame = load_prices(out)
    assert frame["card_id"].nunique() == 12
    pd.testing.assert_series_equal(
        frame["market_price"], generate_prices(12, 9)["market_price"], check_names=False
    )


def test_sample_data_with_other_column_names(run_cli, tmp_path):
    out = tmp_path / "nixtla.csv"
    result = run_cli(
        "sample-data",
        "--output",
        str(out),
        "--cards",
        "4",
        "--days",
        "5",
        "--id-col",
        "unique_id",
        "--date-col",
        "ds",
        "--price-col",
        "y",
    )
    assert result.exit_code == 0, result.stderr
    frame = load_prices(out, id_col="unique_id", date_col="ds", price_col="y")
    expected = generate_prices(4, 5)
    pd.testing.assert_series_equal(
        frame["market_price"], expected["market_price"], check_names=False
    )
    header = out.read_text().splitlines()[0].split(",")
    assert {"unique_id", "ds", "y"} <= set(header) and "card_id" not in header
