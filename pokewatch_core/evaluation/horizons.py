"""A backtest's figures: every metric per horizon, pooled over the horizons and per cutoff
(docs/backtests.md), from statistics that merge exactly, so that every engine gives the same.

Each statistic a metric reads is computed over the forecasts of one horizon
(``AtHorizon(statistic, h)``) and of one cutoff (``AtCutoff(statistic, date)``); both merge
like the statistic itself, so the states of partitions holding different cards merge key by
key. The pooled value merges the horizons' states, each horizon's forecasts counted as
separate series (a strategy pooled over horizons trades each horizon's signals apart).

A forecast's frame row is its target row (``card_id, date, market_price``) with the forecast
(``predicted_price``), the policy's ``signal`` for that row's market price against that
forecast, and the naive forecast from the same cutoff (``naive_price``) that the relative
metrics compare with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of, remember
from pokewatch_core.columns import CUTOFF, DATE, HORIZON, ID, NAIVE, PREDICTED, PRICE, SIGNAL
from pokewatch_core.components import SIGNALS, Metric, SignalPolicy
from pokewatch_core.data.naive import SCALE_SUMS, NaiveBaseline
from pokewatch_core.data.price_index import PriceIndex
from pokewatch_core.evaluation.cutoffs import Cutoffs
from pokewatch_core.evaluation.forecasts import Forecasts
from pokewatch_core.evaluation.horizon_keys import horizon_key
from pokewatch_core.evaluation.scoring import (
    States,
    compute_metrics,
    fit_metrics,
    guarded,
    metric_statistics,
    outcome,
)
from pokewatch_core.statistics import MetricValue, Statistic

SignalsOf = Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any]], pd.Categorical]


@dataclass(frozen=True)
class Grouped(Statistic[Any]):
    """``statistic`` over one group of a backtest's forecasts: computed and merged as the
    statistic is (the subclasses name the group)."""

    statistic: Statistic[Any]

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> Any:
        """The statistic's value over ``frame`` (the group's forecasts)."""
        return self.statistic.compute(frame, history)

    def merge(self, a: Any, b: Any) -> Any:
        """Merged as the statistic merges."""
        return self.statistic.merge(a, b)


@dataclass(frozen=True)
class AtHorizon(Grouped):
    """``statistic`` over the forecasts at one horizon."""

    horizon: int


@dataclass(frozen=True)
class AtCutoff(Grouped):
    """``statistic`` over the forecasts from one cutoff (an ISO date)."""

    cutoff: str


@dataclass
class BacktestFigures:
    """What a backtest adds to an evaluation: its cutoffs, the metrics per horizon and per
    cutoff (a table: ``cutoff`` and one column per metric), and the forecasts."""

    cutoffs: Cutoffs
    by_horizon: dict[int, dict[str, float]]
    by_cutoff: pd.DataFrame
    forecasts: Forecasts | None = field(default=None, repr=False)
    signals: np.ndarray[Any, Any] | None = field(default=None, repr=False)  # (horizon, rows)

    def metric_keys(self, pooled: Mapping[str, float]) -> dict[str, float]:
        """The pooled metrics, then each metric per horizon as ``<metric>_h<h>`` (horizon 1
        alone: the pooled metrics are horizon 1's, no keys added)."""
        out = dict(pooled)
        if self.cutoffs.horizon > 1:
            for h, values in self.by_horizon.items():
                out.update({horizon_key(name, h): v for name, v in values.items()})
        return out


def frame_of(
    table: pd.DataFrame,
    rows: np.ndarray[Any, Any] | None,
    predicted: np.ndarray[Any, Any],
    signals: pd.Categorical[Any],
    naive: np.ndarray[Any, Any] | None,
    scale: tuple[float, int] | None = None,
) -> pd.DataFrame:
    """The forecasts frame of ``table``'s ``rows`` (None: all, in order; an index array or a
    mask) with their forecasts, signals and naive forecasts (and the naive scale's sums of
    the metrics' history, ``scale``, in ``attrs``)."""
    if rows is None:
        frame = table.copy(deep=False)
    else:
        frame = table.iloc[rows] if rows.dtype != bool else table.loc[rows]
        codes, cards = codes_of(table[ID])
        remember(frame[ID], codes[rows], cards)
    frame = frame.copy(deep=False)
    frame.insert(3, PREDICTED, predicted)
    frame.insert(4, SIGNAL, pd.Series(signals, index=frame.index))
    if naive is not None:
        frame[NAIVE] = naive
        frame.attrs[SCALE_SUMS] = scale
    return frame


def score_backtest(
    table: pd.DataFrame,
    forecasts: Forecasts,
    policy: SignalPolicy,
    metrics: Mapping[str, Metric],
    history: pd.DataFrame,
    signals_of: SignalsOf,
    report: Callable[[str], None] = lambda _: None,
    *,
    first_frame: Callable[[pd.DataFrame], None] = lambda _: None,
) -> Scored:
    """The states of every metric statistic per horizon and per cutoff over ``forecasts`` of
    ``table`` (``history``: the metrics' history), and the values of the metrics that compute
    themselves (keyed ``"pooled"``, horizon numbers and cutoff dates). ``first_frame`` is given
    horizon 1's frame over every row (the evaluation frame)."""
    cutoffs = forecasts.cutoffs
    statistics = metric_statistics(metrics)
    stateless = {n: m for n, m in metrics.items() if n not in statistics}
    fit_metrics(stateless.values(), history)
    index = PriceIndex.build(table[[ID, DATE, PRICE]])
    scale = NaiveBaseline.of(history).scale_sums  # once for every horizon and cutoff
    market = table[PRICE].to_numpy(dtype=np.float64)
    states: States = {}
    plain: dict[str, dict[Any, MetricValue]] = {}
    codes = np.full(forecasts.predicted.shape, -1, dtype=np.int8)
    naives = np.full(forecasts.predicted.shape, np.nan)  # each horizon's naive forecasts
    kept: list[pd.DataFrame] = []
    for h in range(1, cutoffs.horizon + 1):
        report(f"scoring horizon {h}")
        mask = forecasts.targets(h)
        predicted = forecasts.predicted[h - 1]
        chosen = predicted if mask is None else predicted[mask]
        decided = signals_of(market if mask is None else market[mask], chosen)
        codes[h - 1] = -1
        if mask is None:
            codes[h - 1] = decided.codes
        else:
            codes[h - 1, mask] = decided.codes
        naive = None
        if not cutoffs.one_step:
            ids = table[ID] if mask is None else table.loc[mask, ID]
            source = forecasts.periods if mask is None else forecasts.periods[mask]
            naive = index.lag(*index.locate_asof(ids, cutoffs.calendar.dates(source - h)), 1)
            if mask is None:
                naives[h - 1] = naive
            else:
                naives[h - 1, mask] = naive
        frame = frame_of(table, mask, chosen, decided, naive, scale)
        if h == 1:
            first_frame(_whole(table, mask, chosen, decided))
        _states(states, metrics, statistics, frame, history, partial(AtHorizon, horizon=h))
        if stateless:
            for name, value in compute_metrics(stateless, frame).items():
                plain.setdefault(name, {})[h] = value
            kept.append(frame)
    if stateless:
        pooled = pd.concat(kept, ignore_index=True)
        for name, value in compute_metrics(stateless, pooled).items():
            plain.setdefault(name, {})["pooled"] = value
        del kept, pooled
    for cutoff, frame in _cutoff_frames(table, forecasts, codes, naives, scale):
        key = cutoff.date().isoformat()
        _states(states, metrics, statistics, frame, history, partial(AtCutoff, cutoff=key))
        for name, value in compute_metrics(stateless, frame).items():
            plain.setdefault(name, {})[key] = value
    for statistic in statistics.values():  # horizon 1 under the plain keys: the analyses'
        states.setdefault(statistic, states[AtHorizon(statistic, 1)])
    return Scored(states, plain, codes)


@dataclass
class Scored:
    """``score_backtest``'s states (per horizon, per cutoff, and horizon 1's under the plain
    keys), the values of the metrics that compute themselves, and the signal codes of each
    horizon's forecasts (``(horizon, rows)``, -1 where none)."""

    states: States
    plain: dict[str, dict[Any, MetricValue]]
    codes: np.ndarray[Any, Any]


def _whole(
    table: pd.DataFrame,
    mask: np.ndarray[Any, Any] | None,
    predicted: np.ndarray[Any, Any],
    signals: pd.Categorical,
) -> pd.DataFrame:
    """Horizon 1's forecasts over every row of ``table`` (NaN where a row is no target)."""
    if mask is None:
        return frame_of(table, None, predicted, signals, None)
    fair = np.full(len(table), np.nan)
    fair[mask] = predicted
    full = pd.Categorical(
        np.full(len(table), None, dtype=object), categories=pd.Index(list(SIGNALS))
    )
    full[mask] = signals
    return frame_of(table, None, fair, full, None)


def _states(
    states: States,
    metrics: Mapping[str, Metric],
    statistics: Mapping[str, Statistic[Any]],
    frame: pd.DataFrame,
    history: pd.DataFrame,
    key: Callable[[Statistic[Any]], Statistic[Any]],
) -> None:
    """Each distinct statistic's value over ``frame``, under ``key(statistic)``."""
    for name, statistic in statistics.items():
        wrapped = key(statistic)
        if wrapped not in states:
            compute = partial(statistic.compute, frame, history)
            states[wrapped] = guarded("metric", metrics[name], "statistic", compute)


def _cutoff_frames(
    table: pd.DataFrame,
    forecasts: Forecasts,
    codes: np.ndarray[Any, Any],
    naives: np.ndarray[Any, Any],
    scale: tuple[float, int],
) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
    """The forecasts frame of each cutoff that has a target row (with each row's horizon
    and cutoff), in cutoff order."""
    cutoffs = forecasts.cutoffs
    order = np.argsort(forecasts.periods, kind="stable")
    periods = forecasts.periods[order]
    dates = cutoffs.dates()
    starts = np.searchsorted(periods, cutoffs.periods, side="right")
    stops = np.searchsorted(periods, cutoffs.periods + cutoffs.horizon, side="right")
    for cutoff, date, begin, end in zip(cutoffs.periods, dates, starts, stops, strict=True):
        if begin == end:
            continue
        rows = order[begin:end]
        steps = periods[begin:end] - cutoff
        predicted = forecasts.predicted[steps - 1, rows]
        signal = pd.Categorical.from_codes(
            codes[steps - 1, rows], categories=pd.Index(list(SIGNALS))
        )
        frame = frame_of(table, rows, predicted, signal, naives[steps - 1, rows], scale)
        frame[HORIZON] = steps
        frame[CUTOFF] = date
        yield date, frame


def finalize_backtest(
    metrics: Mapping[str, Metric],
    states: States,
    cutoffs: Cutoffs,
    plain: Mapping[str, Mapping[Any, MetricValue]],
    forecast_counts: Mapping[str, int] | None = None,
) -> tuple[dict[str, MetricValue], dict[int, dict[str, float]], pd.DataFrame]:
    """The pooled metrics, the metrics by horizon and the table by cutoff, from (merged)
    ``states`` and the values ``plain`` of the metrics that compute themselves."""
    statistics = metric_statistics(metrics)
    horizons = range(1, cutoffs.horizon + 1)

    def values(key: Callable[[Statistic[Any]], Any], group: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, metric in metrics.items():
            statistic = statistics.get(name)
            if statistic is None:
                found = plain.get(name, {}).get(group)
                out[name] = float("nan") if found is None else found
                continue
            state = key(statistic)
            if state is None:
                out[name] = MetricValue(float("nan"))
                continue
            finalize = partial(metric.finalize, state)
            out[name] = outcome(metric, guarded("metric", metric, "finalize", finalize))
        return out

    pooled_states: States = {}
    for statistic in set(statistics.values()):
        merged = None
        for h in horizons:
            part = states.get(AtHorizon(statistic, h))
            if part is None:
                continue
            merged = part if merged is None else statistic.merge(merged, part)
        if merged is not None:
            pooled_states[statistic] = merged
    pooled = values(pooled_states.get, "pooled")
    by_horizon = {
        h: {
            n: float(v)
            for n, v in values(lambda s, h=h: states.get(AtHorizon(s, h)), h).items()  # type: ignore[misc]
        }
        for h in horizons
    }
    rows = []
    for date in cutoffs.dates():
        key = date.date().isoformat()
        if not any(AtCutoff(s, key) in states for s in statistics.values()) and not any(
            key in plain.get(name, {}) for name in metrics
        ):
            continue
        found = values(lambda s, key=key: states.get(AtCutoff(s, key)), key)  # type: ignore[misc]
        rows.append({CUTOFF: key, **{n: float(v) for n, v in found.items()}})
    by_cutoff = pd.DataFrame(rows, columns=[CUTOFF, *metrics])
    return pooled, by_horizon, by_cutoff
