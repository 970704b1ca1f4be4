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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of, remember
from pokewatch_core.columns import CUTOFF, HORIZON, ID, NAIVE, PREDICTED, PRICE, SIGNAL
from pokewatch_core.components import SIGNALS, Metric, SignalPolicy
from pokewatch_core.data.naive import SCALE_SUMS, NaiveForecast, scale_sums
from pokewatch_core.data.price_index import THREADS, PriceIndex
from pokewatch_core.errors import PluginError
from pokewatch_core.evaluation.cutoff_blocks import CutoffBlock, CutoffBlocks
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
from pokewatch_core.plugins.registry import describe
from pokewatch_core.statistics import MetricValue, Statistic

# horizons scored at once: each holds a frame of the table's length, so memory grows with it
HORIZON_THREADS = 2
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
    index = PriceIndex.build(forecasts.history)  # the model's, if it built one
    scale = None  # the MASE scale's sums, once for every horizon and cutoff, if read
    if NaiveForecast() in statistics.values() or stateless:
        end = cutoffs.history_end
        scale = scale_sums(index, None if end is None else cutoffs.calendar.dates([end])[0])
    market = table[PRICE].to_numpy(dtype=np.float64)
    states: States = {}
    plain: dict[str, dict[Any, MetricValue]] = {}
    codes = np.full(forecasts.predicted.shape, -1, dtype=np.int8)
    # the history's own cards (no search), for the naive forecast from each cutoff
    cards = None if cutoffs.one_step else index.card_codes(table[ID])
    kept: dict[int, pd.DataFrame] = {}

    def score_horizon(h: int) -> States:
        """Horizon ``h``'s signals (into ``codes``) and the states of its forecasts."""
        mask = forecasts.targets(h)  # of the forecasts' rows
        rows = forecasts.table_rows(h)  # of the table
        predicted = forecasts.predicted[h - 1]
        chosen = predicted if mask is None else predicted[mask]
        decided = signals_of(market if rows is None else market[rows], chosen)
        codes[h - 1, slice(None) if mask is None else mask] = decided.codes
        naive = None
        if cards is not None:
            # the last price on or before the cutoff: a window mean of one price
            asof = forecasts.cutoff_days(h, mask)
            naive = index.window_mean_on_days(cards if rows is None else cards[rows], asof, 1)
        frame = frame_of(table, rows, chosen, decided, naive, scale)
        if h == 1:
            first_frame(_whole(table, rows, chosen, decided))
        found: States = {}
        _states(found, metrics, statistics, frame, history, partial(AtHorizon, horizon=h))
        if stateless:
            kept[h] = frame
        return found

    horizons = range(1, cutoffs.horizon + 1)
    report(f"scoring horizon{'s 1-' if len(horizons) > 1 else ' '}{cutoffs.horizon}")
    # two horizons at a time on two cores: numpy lets go of the GIL in the passes over them
    with ThreadPoolExecutor(min(THREADS, HORIZON_THREADS, len(horizons))) as pool:
        for found in pool.map(score_horizon, horizons):
            states.update(found)
    for h, frame in sorted(kept.items()):
        for name, value in compute_metrics(stateless, frame).items():
            plain.setdefault(name, {})[h] = value
    if stateless:
        pooled = pd.concat([kept[h] for h in sorted(kept)], ignore_index=True)
        for name, value in compute_metrics(stateless, pooled).items():
            plain.setdefault(name, {})["pooled"] = value
        del kept, pooled
    # per cutoff: in one pass over blocks of cutoffs for the statistics that compute groups,
    # else on each cutoff's own frame
    grouped = {n: s for n, s in statistics.items() if _groups_at_once(s)}
    if grouped:
        report("scoring the cutoffs")
        blocks = CutoffBlocks(table, forecasts, codes, index, scale)

        def block_states(i: int) -> States:
            return _group_states(metrics, grouped, blocks.block(i), history)

        # the blocks on every core: numpy lets go of the GIL in the passes over a block
        with ThreadPoolExecutor(min(THREADS, max(len(blocks), 1))) as pool:
            for found in pool.map(block_states, range(len(blocks))):
                states.update(found)
    apart = {n: s for n, s in statistics.items() if n not in grouped}
    if apart or stateless:
        for cutoff, frame in _cutoff_frames(table, forecasts, codes, index, scale):
            key = cutoff.date().isoformat()
            _states(states, metrics, apart, frame, history, partial(AtCutoff, cutoff=key))
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
    rows: np.ndarray[Any, Any] | None,
    predicted: np.ndarray[Any, Any],
    signals: pd.Categorical,
) -> pd.DataFrame:
    """Horizon 1's forecasts over every row of ``table`` (``rows``: the targets' positions,
    None for all; NaN where a row is no target)."""
    if rows is None:
        return frame_of(table, None, predicted, signals, None)
    fair = np.full(len(table), np.nan)
    fair[rows] = predicted
    codes = np.full(len(table), -1, dtype=np.int8)
    codes[rows] = signals.codes
    full = pd.Categorical.from_codes(codes, categories=signals.categories)
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


def _groups_at_once(statistic: Statistic[Any]) -> bool:
    """Whether ``statistic`` computes many groups in one pass (overrides ``compute_groups``)."""
    return type(statistic).compute_groups is not Statistic.compute_groups


def _group_states(
    metrics: Mapping[str, Metric],
    statistics: Mapping[str, Statistic[Any]],
    block: CutoffBlock,
    history: pd.DataFrame,
) -> States:
    """Each distinct statistic's value over each cutoff of ``block``, under ``AtCutoff``."""
    states: States = {}
    keys = [date.date().isoformat() for date in block.dates]
    done: set[Statistic[Any]] = set()
    for name, statistic in statistics.items():
        if statistic in done:
            continue
        done.add(statistic)
        compute = partial(statistic.compute_groups, block.frame, history, block.starts)
        values = guarded("metric", metrics[name], "statistic", compute)
        if len(values) != len(keys):
            who = describe("metric", metrics[name])
            raise PluginError(
                f"{who}: compute_groups returned {len(values)} values for {len(keys)} groups"
            )
        for key, value in zip(keys, values, strict=True):
            states[AtCutoff(statistic, key)] = value
    return states


def _cutoff_frames(
    table: pd.DataFrame,
    forecasts: Forecasts,
    codes: np.ndarray[Any, Any],
    index: PriceIndex,
    scale: tuple[float, int] | None,
) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
    """The forecasts frame of each cutoff that has a target row (with each row's horizon
    and cutoff, and the naive forecast from that cutoff), in cutoff order.

    The forecasts' rows are put in period order once: a cutoff's target rows, the periods
    after it up to the horizon, are then one slice of them."""
    cutoffs, horizon = forecasts.cutoffs, forecasts.cutoffs.horizon
    order = np.argsort(forecasts.row_periods, kind="stable")  # of the forecasts' rows
    periods = forecasts.row_periods[order]
    if not len(periods):
        return
    positions = order if forecasts.rows is None else forecasts.rows[order]
    ordered = table.iloc[positions]
    card_codes, cards = codes_of(table[ID])
    ordered_codes = card_codes[positions]
    index_codes = index.card_codes(table[ID])[positions]
    low = int(periods[0])
    # edges[p - low]: where the rows of period p start in period order
    edges = np.searchsorted(periods, np.arange(low, int(periods[-1]) + 2), side="left")

    def edge(period: int) -> int:
        return int(edges[min(max(period - low, 0), len(edges) - 1)])

    categories = pd.Index(list(SIGNALS))
    for cutoff, date in zip(cutoffs.periods.tolist(), cutoffs.dates(), strict=True):
        begin, end = edge(cutoff + 1), edge(cutoff + horizon + 1)
        if begin == end:
            continue
        spans = [(h, edge(cutoff + h), edge(cutoff + h + 1)) for h in range(1, horizon + 1)]
        predicted = np.concatenate(
            [forecasts.predicted[h - 1].take(order[a:b]) for h, a, b in spans]
        )
        signal = pd.Categorical.from_codes(
            np.concatenate([codes[h - 1].take(order[a:b]) for h, a, b in spans]),
            categories=categories,
        )
        frame = ordered.iloc[begin:end].copy(deep=False)
        remember(frame[ID], ordered_codes[begin:end], cards)
        frame.insert(3, PREDICTED, predicted)
        frame.insert(4, SIGNAL, pd.Series(signal, index=frame.index))
        frame[NAIVE] = _last_prices(index, date)[index_codes[begin:end]]
        frame.attrs[SCALE_SUMS] = scale
        frame[HORIZON] = periods[begin:end] - cutoff
        frame[CUTOFF] = date
        yield date, frame


def _last_prices(index: PriceIndex, date: pd.Timestamp) -> np.ndarray[Any, Any]:
    """Each indexed card's last observed price on or before ``date`` (NaN if none), and a
    NaN last, where code -1 (a card with no price) lands."""
    cards = np.arange(len(index.cards), dtype=np.int64)
    last = index.lag(*index.locate_codes_asof(cards, date.to_datetime64()), 1)
    return np.append(last, np.nan)


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
