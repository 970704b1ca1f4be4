"""The synthetic panel generator and the embedded sample."""

from __future__ import annotations

import pandas as pd
import pytest

from pokewatch_core import embedded_sample_path, evaluate, generate_prices, load_prices
from pokewatch_core.data.sample_data import REAL_CARDS, TIERS
from tests.conftest import SHARED_DATA


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
        # before: tables that train then refused
        ["--end", "9999-12-31"],
        ["--end", "1677-10-01", "--days", "30"],
        ["--id-col", ""],
        ["--price-col", " "],
        ["--days", "100000000000000000000"],  # before: an OverflowError, exit 1
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


def _real_snapshots() -> pd.DataFrame:
    files = sorted(SHARED_DATA.glob("sv2a_pokemon_card_151_prices_*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_the_real_cards_are_the_vendored_snapshots_cards():
    real = _real_snapshots()
    first = real[real["date"] == real["date"].min()].set_index("card_id")
    listed = pd.DataFrame([vars(c) for c in REAL_CARDS]).set_index("card_id")
    assert sorted(listed.index) == sorted(real["card_id"].unique())
    for column in ("card_number", "card_name", "rarity", "category"):
        assert listed[column].to_dict() == first[column].to_dict(), column
    assert listed["price"].to_dict() == first["market_price"].to_dict()


def test_the_embedded_sample_lists_the_real_cards_as_the_snapshots_do():
    sample = load_prices(embedded_sample_path()).drop_duplicates("card_id")
    real = _real_snapshots().drop_duplicates("card_id")
    columns = ["card_id", "card_number", "card_name", "rarity", "category"]
    merged = real[columns].merge(sample[columns].astype(str), on="card_id", how="left")
    for column in columns[1:]:
        assert (merged[f"{column}_x"] == merged[f"{column}_y"]).all(), column
    # no other card of the sample takes a real card's number and name
    numbered = sample[sample["card_number"].isin(real["card_number"])]
    assert set(numbered["card_name"]) - set(real["card_name"]) <= {
        f"{name} - {number}"
        for name, number in (("Magikarp", "129/165"), ("Gyarados", "130/165"),
                             ("Dragonite", "149/165"), ("Mewtwo", "150/165"))
    }  # fmt: skip


def test_a_model_on_the_sample_prices_the_real_cards():
    sample = load_prices(embedded_sample_path())[["card_id", "date", "market_price"]]
    real = _real_snapshots()[["card_id", "date", "market_price"]]
    both = pd.concat([sample.astype({"card_id": str}), real], ignore_index=True)
    result = evaluate("baseline_moving_average", both, metrics=["rmse"])
    frame = result.frame
    after = frame[frame["date"] > sample["date"].max()]
    assert len(after) == len(real)
    assert after["predicted_price"].notna().all()
