"""An order-free digest of the input's rows (``RowsHash``), as the mergeable statistic
``RowsDigest()``: what a run of the dask engine logs as its dataset's digest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pokewatch_core.data.tables import DATE, ID, PRICE, day_numbers
from pokewatch_core.statistics import Statistic, same_rows


@dataclass(frozen=True)
class RowsHash:
    """An order-free digest of a table's ``card_id, date, market_price`` rows: the sum,
    modulo 2**64, of one 64-bit hash per row. Exact to merge (sums of different rows add up),
    whatever the partitioning; any changed, added or removed row changes it (but for a
    2**-64 chance)."""

    value: int

    def merge(self, other: RowsHash) -> RowsHash:
        """The digest of both tables' rows."""
        return RowsHash((self.value + other.value) % 2**64)

    def hexdigest(self) -> str:
        """The digest as 16 hex digits."""
        return f"{self.value:016x}"


def rows_hash(table: pd.DataFrame) -> RowsHash:
    """The ``RowsHash`` of a validated table (ids as text, dates as days, prices as floats)."""
    if not len(table):
        return RowsHash(0)
    rows = pd.DataFrame(
        {
            ID: np.asarray(table[ID], dtype=object).astype(str),
            DATE: day_numbers(table[DATE].to_numpy()),
            PRICE: table[PRICE].to_numpy(dtype=np.float64),
        }
    )
    hashes = pd.util.hash_pandas_object(rows, index=False).to_numpy(dtype=np.uint64)
    return RowsHash(int(hashes.sum(dtype=np.uint64)))  # wraps modulo 2**64


@dataclass(frozen=True)
class RowsDigest(Statistic[RowsHash]):
    """The digest of the evaluated table's rows: the history's and the scored rows (the same
    rows without a test start)."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> RowsHash:
        """``rows_hash`` of ``history`` and ``frame`` together."""
        if same_rows(frame, history):
            return rows_hash(frame)
        return rows_hash(history).merge(rows_hash(frame))
