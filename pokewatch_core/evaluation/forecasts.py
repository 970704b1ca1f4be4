"""A backtest's forecasts: every target row's fair price at every horizon, with no look-ahead
by construction (docs/backtests.md).

A model that declares ``answers_cutoffs`` is handed the whole history once per horizon and
refit group, with each row's cutoff in ``at``; any other model is called once per cutoff with
only the rows that cutoff allows (dated on or before it, and inside the sliding window), so a
model written against the one-step contract cannot leak. ``fit`` receives the rows dated on or
before the first cutoff of its refit group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.columns import CUTOFF, DATE, ID, PRICE, WINDOW_START
from pokewatch_core.components import Model
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
    """Each horizon's forecasts over the rows of a table: ``predicted[h - 1]`` holds the fair
    price of every row at horizon ``h`` (NaN where the row is no target or the model could not
    predict); ``targets(h)`` the rows that are targets at ``h``."""

    cutoffs: Cutoffs
    periods: IntArray  # each row's period on the calendar
    predicted: FloatArray  # (horizon, rows)
    model: Model  # the model as last fitted

    def targets(self, h: int) -> BoolArray | None:
        """The rows whose period minus ``h`` is a cutoff (None: every row)."""
        if self.cutoffs.mode == "every date":
            return None
        return self.cutoffs.is_cutoff(self.periods - h)

    def cutoff_dates(self, h: int, rows: IntArray | BoolArray | slice) -> pd.DatetimeIndex:
        """The cutoff date of the given rows' forecasts at horizon ``h``."""
        return self.cutoffs.calendar.dates(self.periods[rows] - h)


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
    out = Forecasts(cutoffs, periods, np.full((cutoffs.horizon, len(table)), np.nan), model)
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
    """One call per horizon (and refit group, for a model that learns), the whole history
    handed over with each row's cutoff."""
    cutoffs, model = out.cutoffs, out.model
    history = table[[ID, DATE, PRICE]]
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
        for h in range(1, cutoffs.horizon + 1):
            source = out.periods - h
            chosen = (source >= low) & (source <= high)
            targets = out.targets(h)
            if targets is not None:
                chosen &= targets
            if not chosen.any():
                continue
            whole = bool(chosen.all())
            if h == 1 and cutoffs.input_size is None:
                # one step ahead of an expanding window: "on or before the cutoff" is
                # "strictly before the row's date", the one-step contract
                at = history[[ID, DATE]] if whole else history.loc[chosen, [ID, DATE]]
            else:
                rows = history[[ID, DATE]] if whole else history.loc[chosen, [ID, DATE]]
                extra = {CUTOFF: cutoffs.calendar.dates(source[chosen])}
                start = _window_start(cutoffs, source[chosen])
                if start is not None:
                    extra[WINDOW_START] = cutoffs.calendar.dates(start)
                at = rows.assign(**{k: v.to_numpy() for k, v in extra.items()})
            report(f"predicting with {model.name} at horizon {h}")
            values = predictions(model, history, at)
            out.predicted[h - 1, chosen] = values
    out.model = model


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
            out.predicted[sorted_rows.periods[begin:end] - cutoff - 1, rows] = values
    out.model = model
