"""Statistics: what a metric reads of the evaluation, as an exactly mergeable value.

A ``Statistic`` is a *specification* — a frozen dataclass, equal and hashable by its fields
(``Quality(horizon=1)``, ``Strategy(fee_pct=0.0)``) — of a value computed over the scored rows
of whole cards::

    value = statistic.compute(frame, history)

``frame`` holds the scored rows (``card_id, date, market_price, predicted_price, signal`` and
carried columns); ``history`` is exactly the table ``Model.fit`` receives (``card_id, date,
market_price`` of the rows the model was fitted on: every row, or with a test start the rows
before it), so a statistic that needs earlier prices (the naive forecast) has them. The values
of frames holding different cards combine with ``statistic.merge(a, b)`` into the value of
their rows together: that is how an evaluation is computed in card-aligned chunks or on the
partitions of a cluster and merged with no loss.

Equal statistics are computed once per evaluation and shared by every metric that reads them
(the eight signal-quality metrics of one horizon read one ``Quality``). ``Sums`` covers the
common case: a tuple (or array) of sums and counts, merged by adding element by element.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # numpy and pandas are imported on first use, not at start-up
    import numpy as np
    import pandas as pd

S = TypeVar("S")

INFERRED = "inferred"
"""The prefix of the logged params that hold inferred values:
``inferred.<metric>.<name>`` (``inferred.strategy_sharpe.periods_per_year``)."""


@dataclass(frozen=True)
class Statistic(ABC, Generic[S]):
    """The specification of an exactly mergeable value over the scored rows of whole cards.

    Subclasses are frozen dataclasses (``@dataclass(frozen=True)``) whose fields are the
    specification: two equal statistics are computed once per evaluation. Values must be
    small and picklable (the partitions of a cluster send them to the client).
    """

    @abstractmethod
    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> S:
        """The value over ``frame`` (the scored rows of whole cards), with ``history`` the
        rows the model was fitted on (``card_id, date, market_price``): the same rows as
        ``frame`` without a test start, else the rows before it."""

    def compute_groups(
        self, frame: pd.DataFrame, history: pd.DataFrame, starts: np.ndarray[Any, Any]
    ) -> list[S]:
        """The value over each group of ``frame``'s rows: group ``i`` is rows
        ``starts[i]:starts[i + 1]`` (``starts`` ascending, from 0 to ``len(frame)``, no group
        empty). The law: ``compute_groups(frame, history, starts)[i]`` equals
        ``compute(frame.iloc[starts[i]:starts[i + 1]], history)`` (to rounding).

        A backtest computes its figures per cutoff this way (docs/backtests.md): each group
        is one cutoff's forecasts, sorted by card and date, and the frame holds only the
        evaluation columns (``card_id, date, market_price, predicted_price, signal,
        naive_price, horizon, cutoff``). The default computes each group apart; a statistic
        overrides it to compute every group in one vectorised pass (``group_rows``,
        ``group_sums``). A statistic that does not override it is computed on each cutoff's
        own frame, with every carried column."""
        return [self.compute(frame.iloc[a:b], history) for a, b in pairwise(starts.tolist())]

    def merge(self, a: S, b: S) -> S:
        """The value of two frames holding different cards, together. The law:
        ``merge(compute(a), compute(b))`` equals ``compute(a + b)``. Default: ``a.merge(b)``,
        for values that merge themselves."""
        own = getattr(a, "merge", None)
        if not callable(own):
            raise NotImplementedError(f"{type(self).__name__} does not implement merge()")
        merged: S = own(b)
        return merged


@dataclass(frozen=True)
class Sums(Statistic[S]):
    """A statistic whose value is sums and counts (a tuple of numbers, a numpy array, or a
    number): merged by adding element by element, so only ``compute`` is to be written."""

    def merge(self, a: S, b: S) -> S:
        """``a + b``, element by element."""
        if isinstance(a, tuple) and isinstance(b, tuple):
            added: Any = tuple(x + y for x, y in zip(a, b, strict=True))
            return added  # type: ignore[no-any-return]
        total: S = a + b  # type: ignore[operator]
        return total


SLICED_GROUPS = 512  # up to this many groups, ``group_sums`` sums each slice apart


def group_rows(starts: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The group of each row, for the groups ``starts`` of ``Statistic.compute_groups``."""
    import numpy as np

    bounds: np.ndarray[Any, np.dtype[np.int64]] = np.asarray(starts, dtype=np.int64)
    sizes = bounds[1:] - bounds[:-1]
    rows: np.ndarray[Any, np.dtype[np.int64]] = np.repeat(np.arange(len(sizes)), sizes)
    return rows


def group_sums(
    starts: np.ndarray[Any, Any], values: np.ndarray[Any, Any] | None = None
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The sum of ``values`` (booleans count; None: 1 per row) over the rows of each group
    ``starts`` of ``Statistic.compute_groups`` (groups are slices: no scatter)."""
    import numpy as np

    bounds = np.asarray(starts, dtype=np.int64)
    sizes = (bounds[1:] - bounds[:-1]).astype(np.float64)
    if values is None:
        return sizes
    array = np.asarray(values)
    out = np.zeros(len(sizes))
    if len(sizes) <= SLICED_GROUPS:
        total = np.count_nonzero if array.dtype == np.bool_ else np.sum
        for i, (a, b) in enumerate(pairwise(bounds.tolist())):
            out[i] = total(array[a:b])
        return out
    if array.dtype == np.bool_:
        running = np.concatenate([[0], np.cumsum(array, dtype=np.int64)])
        counted: np.ndarray[Any, np.dtype[np.float64]] = (
            running[bounds[1:]] - running[bounds[:-1]]
        ).astype(np.float64)
        return counted
    filled = sizes > 0
    if filled.any():
        out[filled] = np.add.reduceat(array.astype(np.float64, copy=False), bounds[:-1][filled])
    return out


class MetricValue(float):
    """A metric's value (a float) with what was inferred from the data to compute it, e.g.
    ``MetricValue(1.2, {"periods_per_year": 365.0})``: returned by ``Metric.finalize`` or
    ``Metric.compute`` instead of a plain float. The core logs the inferred values apart from
    the user's parameters, as ``inferred.<metric>.<name>``."""

    inferred: Mapping[str, Any]

    def __new__(cls, value: float, inferred: Mapping[str, Any] | None = None) -> MetricValue:
        made = super().__new__(cls, value)
        made.inferred = dict(inferred or {})
        return made

    @property
    def value(self) -> float:
        """The value as a plain float."""
        return float(self)

    def __repr__(self) -> str:
        return f"MetricValue({float(self)!r}, inferred={dict(self.inferred)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (MetricValue, (float(self), dict(self.inferred)))


def is_specification(statistic: Statistic[Any]) -> bool:
    """Whether ``statistic``'s class is itself a frozen dataclass (so that equality and the hash
    are its own fields'; a subclass without ``@dataclass`` would inherit its parent's, and two
    different statistics would be taken for one)."""
    params = type(statistic).__dict__.get("__dataclass_params__")
    return params is not None and bool(params.frozen)


def same_rows(frame: pd.DataFrame, history: pd.DataFrame) -> bool:
    """Whether ``history`` is ``frame``'s own rows (no test start) rather than the rows
    before them: the two are either the same rows (equal index and dates) or disjoint."""
    import numpy as np

    from pokewatch_core.columns import DATE

    if len(frame) != len(history):
        return False
    if not len(frame):
        return True
    return bool(frame.index.equals(history.index)) and bool(
        np.array_equal(frame[DATE].to_numpy(), history[DATE].to_numpy())
    )
