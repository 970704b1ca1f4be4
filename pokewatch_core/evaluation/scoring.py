"""Scoring: the metrics' values over the scored rows, the same for every engine.

A metric either declares the ``Statistic`` it reads (``Metric.statistic``) and finalizes its
value, or computes itself over the scored rows (``Metric.compute``, after ``Metric.fit`` on the
history). Statistic values are held in a states dict keyed by the statistic (a specification:
equal statistics are one key, computed once and shared by every metric that reads them);
states of frames holding different cards merge key by key, with the statistic's ``merge``.
A metric's outcome is a ``MetricValue``: the number and what it inferred from the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

import pandas as pd

from pokewatch_core.components import Component, Metric
from pokewatch_core.data.tables import DATE, ID, PRICE
from pokewatch_core.errors import PluginError
from pokewatch_core.plugins.registry import describe
from pokewatch_core.statistics import MetricValue, Statistic, is_specification

# A plugin failure is one stderr line of at most 300 characters, "pokewatch: error: " included.
MESSAGE_LIMIT = 280
T = TypeVar("T")
States = dict[Statistic[Any], Any]


def guarded(kind: str, component: Component, phase: str, call: Callable[[], T]) -> T:
    """Run one phase of a plugin component; any exception it raises becomes a one-line
    ``PluginError`` naming the component, the distribution that provides it and the phase."""
    try:
        return call()
    except Exception as exc:
        text = " ".join(str(exc).split())
        cause = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        head = f"{describe(kind, component)} failed in {phase}: "
        room = MESSAGE_LIMIT - len(head)
        if len(cause) > room:
            cause = cause[: room - 1] + "…"
        raise PluginError(head + cause) from exc


def statistic_of(metric: Metric) -> Statistic[Any] | None:
    """The statistic ``metric`` reads (None: it computes itself)."""
    found = guarded("metric", metric, "statistic", metric.statistic)
    if found is not None and not isinstance(found, Statistic):
        who = describe("metric", metric)
        raise PluginError(f"{who}: statistic() returned {type(found).__name__}, not a Statistic")
    if found is not None and not is_specification(found):
        who = describe("metric", metric)
        raise PluginError(
            f"{who}: its statistic {type(found).__name__} is not a frozen dataclass of its own "
            "(equal and hashable by its fields): decorate it with @dataclass(frozen=True)"
        )
    return found


def reads_statistic(metric: Metric) -> bool:
    """Whether ``metric`` declares a statistic (and so merges exactly across partitions)."""
    return statistic_of(metric) is not None


def metric_statistics(metrics: Mapping[str, Metric]) -> dict[str, Statistic[Any]]:
    """The statistic of each metric that declares one, by metric name."""
    found = {name: statistic_of(metric) for name, metric in metrics.items()}
    return {name: statistic for name, statistic in found.items() if statistic is not None}


def history_and_scored(
    frame: pd.DataFrame, start: pd.Timestamp | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The history (``card_id, date, market_price`` of the rows before ``start``, or every
    row) and the scored rows (on or after ``start``, or every row) of an evaluation frame."""
    if start is None:
        return frame[[ID, DATE, PRICE]], frame
    before = (frame[DATE] < start).to_numpy()
    return frame.loc[before, [ID, DATE, PRICE]], frame.loc[~before]


def metric_states(
    metrics: Mapping[str, Metric],
    frame: pd.DataFrame,
    history: pd.DataFrame,
    states: States | None = None,
) -> States:
    """The values over ``frame`` (scored rows of whole cards; ``history``: the rows the model
    was fitted on) of the statistics ``metrics`` read, each distinct statistic once, added to
    ``states`` (those already there are not computed again)."""
    states = {} if states is None else states
    for metric in metrics.values():
        statistic = statistic_of(metric)
        if statistic is not None and statistic not in states:
            compute = partial(statistic.compute, frame, history)
            states[statistic] = guarded("metric", metric, "statistic", compute)
    return states


def statistic_states(
    statistics: Iterable[Statistic[Any]],
    frame: pd.DataFrame,
    history: pd.DataFrame,
    states: States | None = None,
) -> States:
    """``metric_states`` for the core's own statistics (the analyses)."""
    states = {} if states is None else states
    for statistic in statistics:
        if statistic not in states:
            states[statistic] = statistic.compute(frame, history)
    return states


def merge_states(metrics: Mapping[str, Metric], a: States, b: States) -> States:
    """The states of two frames of different cards, merged key by key with each statistic's
    ``merge`` (a failure is named after the first metric reading the statistic)."""
    owners: dict[Statistic[Any], Metric] = {}
    for metric in metrics.values():
        statistic = statistic_of(metric)
        if statistic is not None:
            owners.setdefault(statistic, metric)
    merged = dict(a)
    for key, value in b.items():
        if key not in merged:
            merged[key] = value
            continue
        merge = partial(key.merge, merged[key], value)
        owner = owners.get(key)
        merged[key] = merge() if owner is None else guarded("metric", owner, "merge", merge)
    return merged


def fit_metrics(metrics: Iterable[Metric], history: pd.DataFrame) -> None:
    """``Metric.fit`` for the metrics that compute themselves and learn from the history
    (exactly the table ``Model.fit`` receives)."""
    for metric in metrics:
        if type(metric).fit is not Metric.fit and statistic_of(metric) is None:
            guarded("metric", metric, "fit", partial(metric.fit, history))


def finalize_metrics(metrics: Mapping[str, Metric], states: States) -> dict[str, MetricValue]:
    """The outcome of each metric that declares a statistic, from the (merged) ``states``."""
    out: dict[str, MetricValue] = {}
    for name, metric in metrics.items():
        statistic = statistic_of(metric)
        if statistic is not None:
            finalize = partial(metric.finalize, states[statistic])
            out[name] = outcome(metric, guarded("metric", metric, "finalize", finalize))
    return out


def compute_metrics(metrics: Mapping[str, Metric], frame: pd.DataFrame) -> dict[str, MetricValue]:
    """``Metric.compute`` over ``frame`` (the scored rows) for fitted ``metrics``."""
    return {
        name: outcome(metric, guarded("metric", metric, "compute", partial(metric.compute, frame)))
        for name, metric in metrics.items()
    }


def score_metrics(
    metrics: Mapping[str, Metric],
    frame: pd.DataFrame,
    history: pd.DataFrame,
    states: States,
    report: Callable[[str], None] = lambda _: None,
) -> dict[str, MetricValue]:
    """Every metric over ``frame`` (the scored rows) with ``history`` (the rows the model was
    fitted on): statistics computed once each into ``states``, then finalized; the others
    fitted and computed."""
    fit_metrics(metrics.values(), history)
    out: dict[str, MetricValue] = {}
    for name, metric in metrics.items():
        report(f"computing {name}")
        if statistic_of(metric) is None:
            out.update(compute_metrics({name: metric}, frame))
        else:
            metric_states({name: metric}, frame, history, states)
            out.update(finalize_metrics({name: metric}, states))
    return out


def outcome(metric: Metric, value: Any) -> MetricValue:
    """A metric's returned value as a ``MetricValue`` of a float: a ``PluginError`` when it is
    not a number."""
    inferred: Mapping[str, Any] = {}
    if isinstance(value, MetricValue):
        value, inferred = value.value, value.inferred
    try:
        if isinstance(value, str | bytes | bool):
            raise TypeError(value)  # float() would read "1.5" and True
        number = float(value)
    except (TypeError, ValueError) as exc:
        who = describe("metric", metric)
        raise PluginError(f"{who} returned {type(value).__name__}, not a number") from exc
    return MetricValue(number, dict(inferred))


def inferred_of(outcomes: Mapping[str, MetricValue]) -> dict[str, dict[str, Any]]:
    """What each metric inferred, by metric name (metrics that inferred nothing left out)."""
    return {name: dict(o.inferred) for name, o in outcomes.items() if o.inferred}
