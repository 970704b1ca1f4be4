"""The local engine: the price table read and validated once, in this process, and every
evaluation run on it (a sweep's combinations may fork worker processes that inherit it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from pokewatch_core.data.tables import load_prices, prepare_prices
from pokewatch_core.engines.base import Engine, Progress
from pokewatch_core.evaluation.runner import evaluate_prepared

if TYPE_CHECKING:
    from pokewatch_core.evaluation.runner import EvaluationResult
    from pokewatch_core.evaluation.spec import EvaluationSpec


class LocalEngine(Engine):
    """Evaluations on ``data`` (a DataFrame, or a parquet/CSV path) held in memory.

    ``id_col``, ``date_col``, ``price_col`` map other column names to ``card_id``, ``date``,
    ``market_price``. The table is read and validated when the engine is entered (or passed
    validated as ``table``), never again."""

    name: ClassVar[str] = "local"
    parallel_trials: ClassVar[bool] = True

    def __init__(
        self,
        data: pd.DataFrame | str | Path,
        *,
        source: str | None = None,
        id_col: str | None = None,
        date_col: str | None = None,
        price_col: str | None = None,
    ) -> None:
        self.data = data
        self.source = source or (str(data) if isinstance(data, str | Path) else "data")
        self.id_col, self.date_col, self.price_col = id_col, date_col, price_col
        self._table: pd.DataFrame | None = None

    @property
    def table(self) -> pd.DataFrame:
        """The validated table (read on first use if the engine was not entered)."""
        if self._table is None:
            self.open()
        assert self._table is not None
        return self._table

    def open(self, progress: Progress | None = None) -> None:
        """Read (a path) and validate the table, once."""
        if self._table is not None:
            return
        if isinstance(self.data, str | Path):
            if progress is not None:
                progress(f"reading {Path(self.data).name}")
            self._table = load_prices(
                self.data, id_col=self.id_col, date_col=self.date_col, price_col=self.price_col
            )
        else:
            self._table = prepare_prices(
                self.data, self.source, id_col=self.id_col, date_col=self.date_col,
                price_col=self.price_col,
            )  # fmt: skip

    def close(self) -> None:
        """Let the table go."""
        self._table = None

    def evaluate(
        self,
        spec: EvaluationSpec,
        *,
        progress: Progress | None = None,
        output_dir: str | Path | None = None,
    ) -> EvaluationResult:
        """Fit, predict, decide and score ``spec`` on the table (which is not changed); the
        frame is held in memory (no ``output_dir``)."""
        self.check_output(output_dir)
        result = evaluate_prepared(self.table, spec, source=self.source, progress=progress)
        # the column mapping is logged, so that `gate` reads the data as this run did
        result.engine_params.update(self.column_params())
        return result

    def column_params(self) -> dict[str, str]:
        """The column names given for ``card_id``, ``date`` and ``market_price`` (the
        params ``id_col``, ``date_col``, ``price_col``), when given."""
        given = {"id_col": self.id_col, "date_col": self.date_col, "price_col": self.price_col}
        return {k: v for k, v in given.items() if v is not None}
