"""``pokewatch features`` and ``pokewatch sample-data``: price tables to evaluate."""

from __future__ import annotations

from pathlib import Path

import click

from pokewatch_core.cli.app import cli
from pokewatch_core.cli.options import (
    echo,
    example,
)
from pokewatch_core.columns import DATE, ID, PRICE


@cli.command(
    epilog=example("pokewatch features --raw-dir tests/data/raw --output data/processed.parquet")
)
@click.option(
    "--raw-dir",
    required=True,
    type=click.Path(path_type=str),
    help="Folder of <set>_prices_<YYYY-MM-DD>.parquet|csv snapshots.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=str),
    help="Processed table to write (.parquet or .csv).",
)
@click.option(
    "--set-name",
    default=None,
    help="Snapshot prefix, e.g. sv2a_pokemon_card_151 (needed if several sets).",
)
def features(raw_dir: str, output: str, set_name: str | None) -> None:
    """Combine daily raw snapshots into one processed table with leak-free features."""
    from pokewatch_core.data.features import write_features

    table = write_features(raw_dir, output, set_name)
    echo(
        f"Wrote {output}: {len(table):,} rows, {table[ID].nunique():,} cards, "
        f"{table[DATE].nunique():,} days"
    )


@cli.command(
    "sample-data", epilog=example("pokewatch sample-data --output prices.parquet --cards 20")
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=str),
    help="File to write (.parquet or .csv).",
)
@click.option(
    "--cards",
    default=214,  # sample_data.DEFAULT_CARDS: not imported, the CLI starts without pandas
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of cards (the whole sv2a set list, its variants included, has 214).",
)
@click.option(
    "--days",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of consecutive days.",
)
@click.option(
    "--seed",
    default=151,
    show_default=True,
    type=click.IntRange(min=0),
    help="Random seed, 0 or more (same seed, same panel).",
)
@click.option("--end", default="2025-11-22", show_default=True, help="Last date of the panel.")
@click.option("--id-col", default=ID, show_default=True, help="Name of the card-id column.")
@click.option("--date-col", default=DATE, show_default=True, help="Name of the date column.")
@click.option("--price-col", default=PRICE, show_default=True, help="Name of the price column.")
def sample_data(
    output: str,
    cards: int,
    days: int,
    seed: int,
    end: str,
    id_col: str,
    date_col: str,
    price_col: str,
) -> None:
    """Generate a realistic synthetic sv2a price panel of any size (deterministic per seed),
    optionally with other column names (e.g. Nixtla's unique_id, ds, y)."""
    from datetime import date

    import numpy as np

    from pokewatch_core.data.sample_data import check_size, generate_prices
    from pokewatch_core.data.tables import DATE, FIRST_DAY, ID, LAST_DAY, PRICE
    from pokewatch_core.files import atomic_write_table

    check_size(cards, days)  # first: a huge --days is refused by size, not by overflow
    try:
        last = date.fromisoformat(end)
    except ValueError as exc:
        raise click.BadParameter(f"expected a date such as 2025-11-22, got {end!r}") from exc
    first = np.datetime64(last) - np.timedelta64(days - 1, "D")
    if first < FIRST_DAY or np.datetime64(last) > LAST_DAY:  # a table train would refuse
        raise click.BadParameter(
            f"{days:,} days ending {end} leave the supported range {FIRST_DAY} to {LAST_DAY}",
            param_hint="--end",
        )
    names = {ID: id_col, DATE: date_col, PRICE: price_col}
    for option, name in (
        ("--id-col", id_col),
        ("--date-col", date_col),
        ("--price-col", price_col),
    ):
        if not name.strip():
            raise click.BadParameter("must not be empty", param_hint=option)
    if len(set(names.values())) < 3:
        raise click.BadParameter("the id, date and price columns need three different names")
    frame = generate_prices(cards=cards, days=days, seed=seed, end=end).rename(columns=names)
    atomic_write_table(frame, Path(output))
    echo(f"Wrote {output}: {len(frame):,} rows, {cards:,} cards x {days:,} days")
