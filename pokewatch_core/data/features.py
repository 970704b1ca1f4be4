"""Raw daily snapshots → one processed price table with leak-free features.

A snapshot is ``<set>_prices_<YYYY-MM-DD>.parquet`` (or ``.csv``), one row per card. The
processed table has every snapshot row, sorted by ``(card_id, date)``, plus features computed
only from the card's observed prices on earlier days:

``lag_1``            the last observed price before the date
``price_return_1d``  ``lag_1 / lag_2 - 1``: the last one-step return known before the date
``rolling_mean_3``   mean of the last 3 observed prices before the date (fewer if fewer exist)
``rolling_mean_5``   the same over 5

Run it as ``pokewatch features --raw-dir DIR --output PATH`` or
``python -m pokewatch_core.data.features --raw-dir DIR --output PATH``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pokewatch_core.data.price_index import PriceIndex
from pokewatch_core.data.tables import DATE, ID, PRICE, prepare_prices, read_table
from pokewatch_core.errors import DataError
from pokewatch_core.files import atomic_write_table

SNAPSHOT = re.compile(r"^(?P<set>.+)_prices_(?P<date>\d{4}-\d{2}-\d{2})\.(?:parquet|csv)$")


def find_snapshots(raw_dir: Path, set_name: str | None = None) -> list[tuple[Path, str]]:
    """Snapshot files in ``raw_dir`` as ``(path, file date)``, oldest first."""
    if not raw_dir.exists():
        raise DataError(f"{raw_dir}: no such directory")
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir}: not a directory")
    found: dict[str, list[tuple[Path, str]]] = {}
    for path in sorted(raw_dir.iterdir()):
        match = SNAPSHOT.match(path.name)
        if match and path.is_file():
            found.setdefault(match["set"], []).append((path, match["date"]))
    if set_name is not None:
        if set_name not in found:
            others = f" (found sets: {', '.join(sorted(found))})" if found else ""
            raise DataError(
                f"{raw_dir}: no snapshots named {set_name}_prices_<YYYY-MM-DD>.parquet|csv{others}"
            )
        return _dated(found[set_name])
    if not found:
        raise DataError(
            f"{raw_dir}: no snapshot files (expected <set>_prices_<YYYY-MM-DD>.parquet or .csv)"
        )
    if len(found) > 1:
        raise DataError(
            f"{raw_dir}: snapshots of several sets ({', '.join(sorted(found))}); "
            "choose one with --set-name"
        )
    return _dated(next(iter(found.values())))


def _dated(snapshots: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """One set's snapshots, oldest first, each name's date checked."""
    for path, file_date in snapshots:
        _check_file_date(path, file_date)
    return sorted(snapshots, key=lambda item: item[1])


def _check_file_date(path: Path, file_date: str) -> None:
    """A snapshot's name must hold a real calendar date (``DataError`` naming the file)."""
    try:
        pd.Timestamp(file_date)
    except ValueError as exc:
        raise DataError(f"{path}: the file name's date {file_date} is no calendar date") from exc


def _read_snapshot(path: Path, file_date: str) -> pd.DataFrame:
    frame = prepare_prices(read_table(path), str(path))
    expected = pd.Timestamp(file_date)
    wrong = (frame[DATE] != expected).to_numpy()
    if wrong.any():
        pos = int(np.flatnonzero(wrong)[0])
        raise DataError(
            f"{path}: column 'date': {frame[DATE].iloc[pos].date()} at row {pos + 1} "
            f"(card_id={frame[ID].iloc[pos]!r}) disagrees with the file name's date {file_date}"
        )
    return frame


def _combine(frames: list[pd.DataFrame], paths: list[Path]) -> pd.DataFrame:
    combined = pd.concat(frames, ignore_index=True)
    source = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    combined = combined.assign(_source=source)
    combined = combined.sort_values([ID, DATE, "_source"], kind="stable", ignore_index=True)
    same_key = (combined[ID].to_numpy()[1:] == combined[ID].to_numpy()[:-1]) & (
        combined[DATE].to_numpy()[1:] == combined[DATE].to_numpy()[:-1]
    )
    if same_key.any():
        prices = combined[PRICE].to_numpy()
        a, b = prices[:-1], prices[1:]
        differ = same_key & ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if differ.any():
            i = int(np.flatnonzero(differ)[0])
            first, second = (paths[combined["_source"].iloc[j]] for j in (i, i + 1))
            raise DataError(
                f"{second}: card {combined[ID].iloc[i]!r} on {combined[DATE].iloc[i].date()} "
                f"has price {b[i]:g}, but {first} says {a[i]:g}"
            )
        combined = combined.loc[np.r_[True, ~same_key]].reset_index(drop=True)
    return combined.drop(columns="_source")


def add_features(table: pd.DataFrame) -> pd.DataFrame:
    """Append the leak-free feature columns to a validated price table (same row order)."""
    index = PriceIndex.build(table)
    pos, count = index.locate(table[[ID, DATE]])
    lag_1, lag_2 = index.lag(pos, count, 1), index.lag(pos, count, 2)
    return table.assign(
        lag_1=lag_1,
        price_return_1d=lag_1 / lag_2 - 1.0,
        rolling_mean_3=index.window_mean(pos, count, 3),
        rolling_mean_5=index.window_mean(pos, count, 5),
    )


def build_features(raw_dir: str | Path, set_name: str | None = None) -> pd.DataFrame:
    """Combine every snapshot of ``raw_dir`` into one processed table with features."""
    snapshots = find_snapshots(Path(raw_dir), set_name)
    frames = [_read_snapshot(path, day) for path, day in snapshots]
    combined = _combine(frames, [path for path, _ in snapshots])
    return add_features(combined)


def check_output(raw_dir: Path, output: Path) -> None:
    """Refuse an output that is a directory, or the snapshot folder or inside it: the
    processed table must never replace (or later be read as) an input snapshot."""
    if output.is_dir():
        raise DataError(f"{output}: is a directory; --output names the file to write")
    raw, out = raw_dir.resolve(), output.resolve()
    if out == raw or raw in out.parents:
        raise DataError(
            f"{output}: inside the snapshot folder {raw_dir}; write the processed table elsewhere"
        )


def write_features(
    raw_dir: str | Path, output: str | Path, set_name: str | None = None
) -> pd.DataFrame:
    """``build_features`` and write the result atomically to ``output``."""
    check_output(Path(raw_dir), Path(output))
    table = build_features(raw_dir, set_name)
    atomic_write_table(table, Path(output))
    return table


def _main(argv: Sequence[str] | None = None) -> None:
    """``python -m pokewatch_core.data.features ARGS`` runs ``pokewatch features ARGS``."""
    import runpy
    import sys

    # run the program's own entry point (pokewatch_core/__main__.py) rather than import the
    # command line from here: the command line sits above this module
    sys.argv = ["pokewatch", "features", *(sys.argv[1:] if argv is None else argv)]
    runpy.run_module("pokewatch_core", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _main()
