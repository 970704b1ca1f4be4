"""A backtest's forecasts: every target row's fair price at every horizon, with no look-ahead
by construction (docs/backtests.md).

A model that declares ``answers_cutoffs`` is handed the whole history once per refit group,
the horizons' target rows stacked in ``at`` with each row's cutoff (once per horizon when the
stack would outgrow the table); any other model is called once per cutoff with
only the rows that cutoff allows (dated on or before it, and inside the sliding window), so a
model written against the one-step contract cannot leak. ``fit`` receives the rows dated on or
before the first cutoff of its refit group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.columns import CUTOFF, DATE, ID, PRICE, WINDOW_START
from pokewatch_core.components import Model
from pokewatch_core.data.price_index import share_index
from pokewatch_core.errors import PluginError
from pokewatch_core.evaluation.cutoffs import Cutoffs
from pokewatch_core.evaluation.scoring import MESSAGE_LIMIT, guarded
from pokewatch_core.plugins.registry import describe

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


def predictions(model: Model, history: pd.DataFrame, at: pd.DataFrame) -> FloatArray:
    """``model.predict(history, at)`` checked: one finite number (or NaN) per row of ``at``."""
    raw = guarded("model", model, "predict", lambda: model.predict(history, at))
    # `describe` may scan the installed distributions: only for an error
    try:
        values = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        who = describe("model", model)
        raise PluginError(f"{who} returned non-numeric predictions: {exc}"[:MESSAGE_LIMIT]) from exc
    if len(values) != len(at):
        who = describe("model", model)
        raise PluginError(f"{who} returned {len(values)} predictions for {len(at)} rows")
    if np.isinf(values).any():
        raise PluginError(f"{describe('model', model)} returned infinite predictions")
    return values


def fits(model: Model) -> bool:
    """Whether ``model`` learns in ``fit`` (the base class's ``fit`` learns nothing)."""
    return type(model).fit is not Model.fit


def fitted(model: Model, history: pd.DataFrame) -> Model:
    """``model`` after ``fit(history)`` (the model ``fit`` returns, if it returns one)."""
    result = guarded("model", model, "fit", lambda: model.fit(history))
    return result if isinstance(result, Model) else model


@dataclass
class Forecasts:
    """Each horizon's forecasts over the target rows of a table.

    ``rows`` are the table positions (ascending) of the rows that are a target at some
    horizon, those dated after the first cutoff and at most ``horizon`` periods after the
    last (None: every row, the every-date mode); ``predicted[h - 1]`` holds the fair price of
    each of them at horizon ``h`` (NaN where it is no target at ``h`` or the model could not
    predict). Holding only those rows keeps a few windows over a long history cheap."""

    cutoffs: Cutoffs
    periods: IntArray  # each table row's period on the calendar
    rows: IntArray | None
    predicted: FloatArray  # (horizon, len(rows)), or (horizon, table rows)
    model: Model  # the model as last fitted
    history: pd.DataFrame = field(repr=False)  # the table's rows a vectorised model is handed
    _masks: dict[int, BoolArray] = field(default_factory=dict, repr=False)

    @cached_property
    def row_periods(self) -> IntArray:
        """The period of each of ``rows``."""
        return self.periods if self.rows is None else self.periods[self.rows]

    def targets(self, h: int) -> BoolArray | None:
        """Which of ``rows`` are targets at horizon ``h``: their period minus ``h`` is a
        cutoff (None: every one)."""
        if self.cutoffs.mode == "every date":
            return None
        if h not in self._masks:
            self._masks[h] = self.cutoffs.is_cutoff(self.row_periods - h)
        return self._masks[h]

    def table_rows(self, h: int) -> IntArray | None:
        """The table positions of the targets at horizon ``h`` (None: every row)."""
        mask = self.targets(h)
        if self.rows is None or mask is None:
            return self.rows
        return self.rows[mask]

    def target_mask(self, h: int) -> BoolArray | None:
        """The targets at horizon ``h`` as a mask over the table (None: every row)."""
        rows = self.table_rows(h)
        if rows is None:
            return None
        mask = np.zeros(len(self.periods), dtype=bool)
        mask[rows] = True
        return mask

    def on_table(self, h: int) -> FloatArray:
        """Horizon ``h``'s forecasts, one per table row (NaN where the row is no target)."""
        if self.rows is None:
            whole: FloatArray = self.predicted[h - 1]
            return whole
        out = np.full(len(self.periods), np.nan)
        out[self.rows] = self.predicted[h - 1]
        return out

    def cutoff_dates(self, h: int, which: BoolArray | None) -> pd.DatetimeIndex:
        """The cutoff date of the forecasts at horizon ``h`` of ``rows[which]`` (None: all)."""
        periods = self.row_periods if which is None else self.row_periods[which]
        return self.cutoffs.calendar.dates(periods - h)

    def cutoff_days(self, h: int, which: BoolArray | None) -> IntArray:
        """``cutoff_dates`` as day numbers."""
        periods = self.row_periods if which is None else self.row_periods[which]
        return self.cutoffs.calendar.day_numbers(periods - h)


class _Sorted:
    """The table's rows sorted by period, so that the rows a cutoff allows are one slice."""

    def __init__(self, table: pd.DataFrame, periods: IntArray) -> None:
        self.order = np.argsort(periods, kind="stable")
        self.periods = periods[self.order]
        self.rows = table[[ID, DATE, PRICE]].iloc[self.order]

    def upto(self, period: int) -> int:
        """Sorted rows at periods <= ``period`` end here."""
        return int(np.searchsorted(self.periods, period, side="right"))

    def since(self, period: int) -> int:
        """Sorted rows at periods >= ``period`` start here."""
        return int(np.searchsorted(self.periods, period, side="left"))


def forecast(
    table: pd.DataFrame,
    model: Model,
    cutoffs: Cutoffs,
    report: Callable[[str], None] = lambda _: None,
    *,
    refit: bool = True,
) -> Forecasts:
    """The forecasts of ``model`` over a validated ``table`` from ``cutoffs``; ``refit``
    False: ``model`` is fitted already and is only asked to predict (once per cutoff, an
    ordinary model)."""
    periods = cutoffs.calendar.periods(table[DATE].to_numpy())
    rows = None
    if cutoffs.mode != "every date":
        first, last = cutoffs.span
        rows = np.flatnonzero((periods > first) & (periods <= last + cutoffs.horizon))
    count = len(table) if rows is None else len(rows)
    history = table[[ID, DATE, PRICE]]
    share_index(history)  # indexed once for every horizon, and for the scoring
    predicted = np.full((cutoffs.horizon, count), np.nan)
    out = Forecasts(cutoffs, periods, rows, predicted, model, history)
    if model.answers_cutoffs:
        _vectorised(table, out, report)
    else:
        _per_cutoff(table, out, report, learns=refit and fits(model))
    return out


def _window_start(cutoffs: Cutoffs, cutoff: IntArray | int) -> Any:
    """The first period of the sliding window ending at ``cutoff`` (None: expanding); never
    before period 0, the data's first date (a window longer than the data is the whole
    history, and its first date stays a date)."""
    size = cutoffs.input_size
    return None if size is None else np.maximum(np.asarray(cutoff) - size + 1, 0)


def _vectorised(table: pd.DataFrame, out: Forecasts, report: Callable[[str], None]) -> None:
    """The whole history handed over with each target row's cutoff: per refit group (for a
    model that learns), the horizons' target rows stacked in as few calls as keep ``at`` no
    longer than the table (one call for a few windows, one per horizon at every date)."""
    cutoffs, model, history = out.cutoffs, out.model, out.history
    sorted_rows = _Sorted(table, out.periods) if fits(model) else None
    groups = cutoffs.refit_groups() if fits(model) else [cutoffs.periods]
    for group in groups:
        if sorted_rows is not None:
            first = _first_with_history(sorted_rows, cutoffs, group)
            if first is None:
                continue
            group = group[group >= first]
            report(f"fitting {model.name} at cutoff {cutoffs.calendar.dates([first])[0].date()}")
            model = fitted(model, _allowed(sorted_rows, cutoffs, first))
        low, high = int(group[0]), int(group[-1])
        parts: list[tuple[int, BoolArray]] = []
        for h in range(1, cutoffs.horizon + 1):
            source = out.row_periods - h
            chosen = (source >= low) & (source <= high)
            targets = out.targets(h)
            if targets is not None:
                chosen &= targets
            if chosen.any():
                parts.append((h, chosen))
        for batch in _batches(parts, len(table)):
            report(f"predicting with {model.name} at horizon {_horizons(batch)}")
            at = _at(history, out, batch)
            values = predictions(model, history, at)
            offset = 0
            for h, chosen in batch:
                taken = int(np.count_nonzero(chosen))
                out.predicted[h - 1, chosen] = values[offset : offset + taken]
                offset += taken
    out.model = model


def _batches(
    parts: list[tuple[int, BoolArray]], limit: int
) -> Iterator[list[tuple[int, BoolArray]]]:
    """``parts`` in consecutive batches of at most ``limit`` rows (a larger part alone)."""
    batch: list[tuple[int, BoolArray]] = []
    size = 0
    for part in parts:
        rows = int(np.count_nonzero(part[1]))
        if batch and size + rows > limit:
            yield batch
            batch, size = [], 0
        batch.append(part)
        size += rows
    if batch:
        yield batch


def _horizons(batch: list[tuple[int, BoolArray]]) -> str:
    """The horizons of a batch in words: ``1`` or ``1-7``."""
    first, last = batch[0][0], batch[-1][0]
    return str(first) if first == last else f"{first}-{last}"


def _at(history: pd.DataFrame, out: Forecasts, batch: list[tuple[int, BoolArray]]) -> pd.DataFrame:
    """The rows a batch asks for, in order: each target row with its cutoff (and window
    start); horizon 1 alone of an expanding window without them, the one-step contract."""
    cutoffs = out.cutoffs
    if len(batch) == 1 and batch[0][0] == 1 and cutoffs.input_size is None:
        # one step ahead of an expanding window: "on or before the cutoff" is "strictly
        # before the row's date"; every row is handed over as a view of the history
        chosen = batch[0][1]
        if out.rows is None and chosen.all():
            return history[[ID, DATE]]
        positions = np.flatnonzero(chosen) if out.rows is None else out.rows[chosen]
        return history[[ID, DATE]].iloc[positions]
    slots = [np.flatnonzero(chosen) for _, chosen in batch]
    positions = np.concatenate(slots if out.rows is None else [out.rows[s] for s in slots])
    source = np.concatenate(
        [out.row_periods[s] - h for (h, _), s in zip(batch, slots, strict=True)]
    )
    extra = {CUTOFF: cutoffs.calendar.dates(source)}
    start = _window_start(cutoffs, source)
    if start is not None:
        extra[WINDOW_START] = cutoffs.calendar.dates(start)
    rows = history[[ID, DATE]].iloc[positions]
    # a row stacked for several horizons would repeat its label: number the rows instead,
    # so a model that writes its answers back by label cannot mix two horizons up
    rows.index = pd.RangeIndex(len(rows))
    return rows.assign(**{k: v.to_numpy() for k, v in extra.items()})


def _first_with_history(sorted_rows: _Sorted, cutoffs: Cutoffs, group: IntArray) -> int | None:
    """The first cutoff of ``group`` that allows at least one row."""
    for cutoff in group:
        if len(_allowed(sorted_rows, cutoffs, int(cutoff))):
            return int(cutoff)
    return None


def _allowed(sorted_rows: _Sorted, cutoffs: Cutoffs, cutoff: int) -> pd.DataFrame:
    """The rows a model at ``cutoff`` may see: on or before it, inside the sliding window."""
    start = _window_start(cutoffs, cutoff)
    begin = 0 if start is None else sorted_rows.since(int(start))
    return sorted_rows.rows.iloc[begin : sorted_rows.upto(cutoff)]


def _per_cutoff(
    table: pd.DataFrame, out: Forecasts, report: Callable[[str], None], *, learns: bool
) -> None:
    """One call per cutoff, with only the rows that cutoff allows; refit per group."""
    cutoffs, model = out.cutoffs, out.model
    sorted_rows = _Sorted(table, out.periods)
    horizon = cutoffs.horizon
    groups = cutoffs.refit_groups()
    report(f"predicting with {model.name} from {len(cutoffs.periods)} cutoffs")
    for group in groups:
        needs_fit = learns
        fit_rows = None  # the rows of the group's first cutoff that allows any
        for cutoff in (int(c) for c in group):
            allowed = _allowed(sorted_rows, cutoffs, cutoff)
            if not len(allowed):
                continue  # a cutoff before the data (or its window) begins: no forecast
            if fit_rows is None:
                fit_rows = allowed
            begin, end = sorted_rows.upto(cutoff), sorted_rows.upto(cutoff + horizon)
            if begin == end:
                continue  # no target row
            if needs_fit:  # fitted as of the group's first cutoff, not this later one
                model = fitted(model, fit_rows)
                needs_fit = False
            at = sorted_rows.rows.iloc[begin:end][[ID, DATE]]
            values = predictions(model, allowed, at)
            rows = sorted_rows.order[begin:end]
            slots = rows if out.rows is None else np.searchsorted(out.rows, rows)
            out.predicted[sorted_rows.periods[begin:end] - cutoff - 1, slots] = values
    out.model = model
