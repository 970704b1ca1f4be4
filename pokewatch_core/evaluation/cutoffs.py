"""Backtest options and the cutoffs they give on a data set (docs/backtests.md).

A *cutoff* is a calendar date shared by every card: a model at a cutoff sees every card's
history up to and including it. A *horizon* ``h`` counts the panel's periods after a cutoff
(days for daily data, months for monthly): the forecast of a row at period ``p`` from cutoff
``c`` has horizon ``p - c``. Three ways to choose cutoffs:

* every date (the default): each row is forecast from each of the ``horizon`` periods before
  it (at horizon 1, today's one-step walk-forward);
* ``windows`` cutoffs spaced ``step`` periods apart, the last one ``horizon`` periods before the
  data's last date (statsforecast's ``n_windows`` / ``step_size``);
* ``test_start``: every date from the period before it, the model fitted once on the rows
  before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.data.tables import DAY_NS, day_numbers
from pokewatch_core.errors import ConfigError

IntArray = np.ndarray[Any, np.dtype[np.int64]]
EVERY, ONCE = 1, 0  # ``refit``: fit at every window, or once (at the first cutoff)


def parse_refit(value: Any, option: str = "refit") -> int:
    """``refit`` as an int: 1 every window (``True``, ``"every"``), 0 once (``False``,
    ``"once"``), ``K`` every K windows."""
    if isinstance(value, bool):
        return EVERY if value else ONCE
    text = str(value).strip().lower()
    if text in {"every", "true", "yes"}:
        return EVERY
    if text in {"once", "false", "no", "0"}:
        return ONCE
    try:
        number = int(text)
    except ValueError:
        raise ConfigError(
            f"{option}: expected 'every', 'once' or a number of windows, got {value!r}"
        ) from None
    if number < 0:
        raise ConfigError(f"{option}: a number of windows must be 1 or more, got {value!r}")
    return number


def refit_name(refit: int) -> str:
    """How ``refit`` is logged and shown: ``every``, ``once`` or ``every 3 windows``."""
    return {EVERY: "every", ONCE: "once"}.get(refit, f"every {refit} windows")


@dataclass(frozen=True)
class BacktestOptions:
    """What to backtest: the ``horizon`` (periods ahead, default 1), the cutoffs (every date,
    or ``windows`` spaced ``step`` periods apart, default ``horizon``), ``refit`` (1 every
    window, 0 once, K every K windows; default every window, once with a test start) and
    ``input_size`` (a sliding training window of that many periods; None: expanding)."""

    horizon: int = 1
    windows: int | None = None
    step: int | None = None
    refit: int | None = None
    input_size: int | None = None

    @property
    def is_default(self) -> bool:
        """Whether these are the one-step walk-forward of every date (today's evaluation)."""
        return self == BacktestOptions()

    def check(self, test_start: pd.Timestamp | None, spell: Any = None) -> None:
        """Refuse impossible or contradictory options (``ConfigError``) before any data is
        read; ``spell`` names an option as the caller knows it (``--windows``)."""
        name = spell or (lambda option, value=None: option)
        for option in ("horizon", "windows", "step", "input_size"):
            value = getattr(self, option)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{name(option)} must be a whole number, got {value!r}")
        if self.horizon < 1:
            raise ConfigError(f"{name('horizon')} must be 1 or more, got {self.horizon}")
        if self.windows is not None and self.windows < 1:
            raise ConfigError(f"{name('windows')} must be 1 or more, got {self.windows}")
        if self.step is not None and self.step < 1:
            raise ConfigError(f"{name('step')} must be 1 or more, got {self.step}")
        if self.step is not None and self.windows is None:
            raise ConfigError(f"{name('step')} spaces windows: it needs {name('windows')}")
        if self.input_size is not None and self.input_size < 1:
            raise ConfigError(f"{name('input_size')} must be 1 or more, got {self.input_size}")
        if self.refit is not None and self.refit < 0:
            raise ConfigError(f"{name('refit')} must be 0 (once) or more, got {self.refit}")
        if test_start is not None and self.windows is not None:
            raise ConfigError(
                f"{name('test_start')} and {name('windows')} both choose the cutoffs: give one"
            )

    @property
    def window_step(self) -> int:
        """The windows' spacing in periods (``step``, default ``horizon``)."""
        return self.step if self.step is not None else self.horizon


@dataclass(frozen=True)
class Calendar:
    """The panel's periods: ``size`` days, or ``size`` months (``unit`` ``"D"`` / ``"M"``),
    counted from the data's first date (period 0). Monthly dates keep their day of the month
    (``day``; 0: the month's end)."""

    unit: str
    size: int
    origin: int  # the first date's day number ("D") or month number ("M")
    day: int = 1

    @classmethod
    def infer(cls, days: IntArray, source: str = "data") -> Calendar | None:
        """The calendar of distinct day numbers ``days`` (sorted): months when every date has
        one day of the month (or is a month's end) and they are a month or more apart, else
        days; the size the greatest common divisor of the gaps. None for fewer than two dates."""
        if len(days) < 2:
            return None
        stamps = pd.DatetimeIndex(days.astype("datetime64[D]"))
        gaps = np.diff(days)
        months = stamps.year.to_numpy() * 12 + stamps.month.to_numpy() - 1
        month_ends = bool(stamps.is_month_end.all())
        one_day = len(np.unique(stamps.day)) == 1 and int(stamps.day[0]) <= 28
        if (month_ends or one_day) and gaps.min() >= 28:
            size = reduce(math.gcd, np.diff(months).tolist())
            return cls("M", size, int(months[0]), 0 if month_ends else int(stamps.day[0]))
        return cls("D", reduce(math.gcd, gaps.tolist()), int(days[0]))

    def periods(self, dates: Any) -> IntArray:
        """The period of each date (on the calendar by construction)."""
        days = day_numbers(dates)
        if self.unit == "D":
            out: IntArray = (days - self.origin) // self.size
            return out
        stamps = pd.DatetimeIndex(days.astype("datetime64[D]"))
        months = stamps.year.to_numpy() * 12 + stamps.month.to_numpy() - 1
        counted: IntArray = ((months - self.origin) // self.size).astype(np.int64)
        return counted

    def dates(self, periods: Any) -> pd.DatetimeIndex:
        """The date of each period."""
        number = np.asarray(periods, dtype=np.int64)
        if self.unit == "D":  # nanoseconds in one pass
            nanos = (number * (self.size * DAY_NS)) + self.origin * DAY_NS
            return pd.DatetimeIndex(nanos.view("datetime64[ns]"))
        months = self.origin + number * self.size  # months since year 0
        first = (months - 1970 * 12).astype("datetime64[M]")
        if self.day == 0:  # the month's last day
            days = (first + 1).astype("datetime64[D]") - 1
        else:
            days = first.astype("datetime64[D]") + (self.day - 1)
        return pd.DatetimeIndex(days.astype("datetime64[ns]"))

    def day_numbers(self, periods: Any) -> IntArray:
        """The day number (days since 1970-01-01) of each period's date."""
        if self.unit == "D":
            days: IntArray = self.origin + np.asarray(periods, dtype=np.int64) * self.size
            return days
        return day_numbers(self.dates(periods))

    def describe(self) -> str:
        """``daily``, ``every 7 days``, ``monthly``, ``every 3 months``."""
        if self.size == 1:
            return "daily" if self.unit == "D" else "monthly"
        return f"every {self.size} {'days' if self.unit == 'D' else 'months'}"

    def period_name(self, count: int) -> str:
        """``count`` periods in words: ``7 days``, ``1 month``, ``14 days`` (size 7, count 2)."""
        amount = count * self.size
        unit = "day" if self.unit == "D" else "month"
        return f"{amount} {unit}{'' if amount == 1 else 's'}"


DAILY = Calendar("D", 1, 0)  # the calendar of data with a single date (horizon 1 only)


@dataclass(frozen=True, eq=False)
class Cutoffs:
    """Backtest options resolved on a data set: its calendar, the cutoff periods (ascending),
    the refit schedule, and the rows the metrics' history holds.

    A row at period ``p`` is a target at horizon ``h`` exactly when ``p - h`` is a cutoff."""

    calendar: Calendar
    horizon: int
    periods: IntArray
    refit: int
    input_size: int | None
    mode: str  # "every date", "windows" or "test start"
    step: int | None = None
    history_end: int | None = None  # the metrics' history: rows at periods <= this (None: all)

    @property
    def one_step(self) -> bool:
        """Whether this is today's evaluation: horizon 1 at every date or from a test start,
        expanding (the frame and metrics are the one-step evaluation's, unchanged)."""
        return self.horizon == 1 and self.mode != "windows" and self.input_size is None

    @property
    def span(self) -> tuple[int, int]:
        """The first and last cutoff period."""
        return int(self.periods[0]), int(self.periods[-1])

    def is_cutoff(self, periods: IntArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Whether each period is a cutoff."""
        where = np.searchsorted(self.periods, periods)
        where = np.minimum(where, len(self.periods) - 1)
        hit: np.ndarray[Any, np.dtype[np.bool_]] = self.periods[where] == periods
        return hit

    def refit_groups(self) -> list[IntArray]:
        """The cutoffs in fitting groups: one per refit (all in one group with ``refit`` 0)."""
        if self.refit == ONCE:
            return [self.periods]
        k = self.refit
        return [self.periods[i : i + k] for i in range(0, len(self.periods), k)]

    def dates(self) -> pd.DatetimeIndex:
        """The cutoffs as dates."""
        return self.calendar.dates(self.periods)

    def params(self) -> dict[str, Any]:
        """What a logged run records of its cutoffs."""
        first, last = self.dates()[[0, -1]]
        out: dict[str, Any] = {
            "horizon": self.horizon,
            "cutoffs": self.mode,
            "cutoff_count": len(self.periods),
            "first_cutoff": first.date().isoformat(),
            "last_cutoff": last.date().isoformat(),
            "period": self.calendar.describe(),
            "refit": refit_name(self.refit),
        }
        if self.step is not None:
            out["step"] = self.step
        out["input_size"] = self.input_size if self.input_size is not None else "expanding"
        return out


def resolve_cutoffs(
    options: BacktestOptions,
    days: IntArray,
    test_start: pd.Timestamp | None,
    *,
    source: str = "data",
    spell: Any = None,
    history_needed: int = 1,
) -> Cutoffs:
    """The cutoffs of ``options`` on data whose distinct dates are the day numbers ``days``
    (sorted). Refuses, naming the option and the data's range, windows that do not fit, a
    sliding window shorter than the model needs (``history_needed`` periods) and a horizon or
    windows on data whose spacing cannot be inferred."""
    name = spell or (lambda option, value=None: option)
    options.check(test_start, spell)
    calendar = Calendar.infer(days, source)
    span = _range(days)
    if calendar is None:
        if not options.is_default and not (options.horizon == 1 and options.windows is None):
            raise ConfigError(
                f"{source}: the spacing of its dates cannot be inferred from one date ({span}): "
                f"{name('horizon')} and {name('windows')} need at least two dates"
            )
        calendar = DAILY if not len(days) else Calendar("D", 1, int(days[0]))
    periods = calendar.periods(days.astype("datetime64[D]")) if len(days) else np.zeros(0, int)
    first, last = (int(periods[0]), int(periods[-1])) if len(periods) else (0, 0)
    horizon, size = options.horizon, options.input_size
    if size is not None and size < history_needed:
        raise ConfigError(
            f"{name('input_size')} {size} is shorter than the model needs ({history_needed} "
            f"periods of {calendar.describe()} data, {span})"
        )
    if options.windows is not None:
        step, count = options.window_step, options.windows
        latest = last - horizon
        earliest = latest - (count - 1) * step
        needed = first + (size or 1) - 1
        if earliest < needed:
            fits = (latest - needed) // step + 1 if latest >= needed else 0
            raise ConfigError(
                f"{name('windows')} {count} of {name('horizon')} {horizon} spaced "
                f"{name('step')} {step} need {(count - 1) * step + horizon + (size or 1)} "
                f"periods; the data has {last - first + 1} ({calendar.describe()}, {span}): "
                f"at most {fits} {'window fits' if fits == 1 else 'windows fit'}"
            )
        cutoff_periods = np.arange(earliest, latest + 1, step, dtype=np.int64)
        refit = options.refit if options.refit is not None else EVERY
        return Cutoffs(
            calendar, horizon, cutoff_periods, refit, size, "windows", step, int(earliest)
        )
    if test_start is not None:
        start = _first_period_from(calendar, test_start)
        if start > last:
            raise ConfigError(
                f"{source}: no rows on or after test_start {test_start.date()} ({span})"
            )
        _check_reach(options, calendar, last - max(first, start - 1), span, name, test_start)
        refit = options.refit if options.refit is not None else ONCE
        cutoff_periods = np.arange(start - 1, last, dtype=np.int64)
        return Cutoffs(
            calendar, horizon, cutoff_periods, refit, size, "test start", None, start - 1
        )
    _check_reach(options, calendar, last - first, span, name)
    refit = options.refit if options.refit is not None else EVERY
    cutoff_periods = np.arange(first - horizon, max(last, first), dtype=np.int64)
    return Cutoffs(calendar, horizon, cutoff_periods, refit, size, "every date")


def _check_reach(
    options: BacktestOptions,
    calendar: Calendar,
    reach: int,
    span: str,
    name: Any,
    test_start: pd.Timestamp | None = None,
) -> None:
    """Refuse a horizon longer than any forecast with history can be: ``reach`` periods, from
    the data's first date (or the period before ``test_start``) to its last."""
    if options.horizon > 1 and options.horizon > reach:
        after = "" if test_start is None else f" after {name('test_start')} {test_start.date()}"
        raise ConfigError(
            f"{name('horizon')} {options.horizon} is longer than the data{after}: "
            f"{calendar.describe()} data, {span}, has forecasts at most "
            f"{calendar.period_name(max(reach, 0))} ahead"
        )


def _first_period_from(calendar: Calendar, start: pd.Timestamp) -> int:
    """The first period whose date is on or after ``start``."""
    guess = int(calendar.periods(np.array([start.to_datetime64()]))[0])
    while calendar.dates([guess])[0] < start:
        guess += 1
    while guess > -(1 << 40) and calendar.dates([guess - 1])[0] >= start:
        guess -= 1
    return guess


def _range(days: IntArray) -> str:
    """The data's date range in words."""
    if not len(days):
        return "no dates"
    first, last = pd.DatetimeIndex(days[[0, -1]].astype("datetime64[D]"))
    if first == last:
        return f"one date, {first.date()}"
    return f"{first.date()}..{last.date()}"


def distinct_days(dates: pd.Series[Any]) -> IntArray:
    """The sorted distinct day numbers of a date column."""
    if not len(dates):
        return np.zeros(0, np.int64)
    days = day_numbers(dates.to_numpy())
    low, high = int(days.min()), int(days.max())
    if high - low > 4 * len(days) + (1 << 16):  # sparse over a long span: sort instead
        return np.unique(days)
    # a panel's dates span few days next to its rows: counting beats hashing or sorting
    present: IntArray = np.flatnonzero(np.bincount(days - low, minlength=high - low + 1)) + low
    return present
