"""The local evaluation (docs/user-guide.md, evaluation semantics): any model, policy, metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pokewatch_core.analysis.analyses import Analyses, AnalysisStatistics
from pokewatch_core.analysis.sample import Sample
from pokewatch_core.card_ids import codes_of, remember
from pokewatch_core.columns import CUTOFF, HORIZON
from pokewatch_core.components import SIGNALS, Metric, Model, SignalPolicy
from pokewatch_core.data.tables import DATE, ID, PREDICTED, PRICE, SIGNAL, prepare_prices
from pokewatch_core.defaults import DEFAULT_POLICY
from pokewatch_core.errors import ConfigError, DataError, PluginError
from pokewatch_core.evaluation.cutoffs import ONCE, Cutoffs, distinct_days
from pokewatch_core.evaluation.forecasts import fits, fitted, forecast, predictions
from pokewatch_core.evaluation.horizons import BacktestFigures, finalize_backtest, score_backtest
from pokewatch_core.evaluation.scoring import (
    States,
    inferred_of,
    metric_statistics,
    score_metrics,
    statistic_states,
)
from pokewatch_core.evaluation.scoring import guarded as _guarded
from pokewatch_core.plugins.registry import describe
from pokewatch_core.plugins.resolve import resolve_components
from pokewatch_core.statistics import INFERRED

if TYPE_CHECKING:
    from pokewatch_core.evaluation.spec import EvaluationSpec


@dataclass
class EvaluationResult:
    """What ``evaluate`` returns: metrics, the evaluation frame and the components used.

    The dask engine leaves the evaluation frame on disk, a parquet part per partition in
    ``frame_dir``: its result reads it into memory only if ``frame`` is asked for, and its
    ``analyses`` and plots come from the partitions' merged states."""

    metrics: dict[str, float]
    held_frame: pd.DataFrame | None
    model: Model
    policy: SignalPolicy
    metric_components: dict[str, Metric] = field(default_factory=dict)
    test_start: pd.Timestamp | None = None
    states: States = field(default_factory=dict, repr=False)
    """The values of the statistics the metrics read, by statistic (over the scored rows); a
    result of the dask engine also holds the analyses' and the plots' sample, merged."""
    frame_dir: Path | None = None
    """Where the evaluation frame was written (dask engine), None when held in memory."""
    engine_params: dict[str, Any] = field(default_factory=dict)
    """The engine's own run parameters (``engine``, ``partitions``); none for the local one."""
    inferred: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What the metrics inferred from the data (by metric name), e.g. ``{"strategy_sharpe":
    {"periods_per_year": 365.0}}``: logged as ``inferred.<metric>.<name>`` params."""
    backtest: BacktestFigures | None = None
    """A backtest's cutoffs, metrics by horizon and by cutoff, and forecasts (horizon > 1 or
    windows; docs/backtests.md); None for the one-step evaluation."""
    scored_rows: np.ndarray[Any, Any] | None = field(default=None, repr=False)
    """A backtest's rows of ``frame`` forecast at horizon 1 (None: every row)."""
    history_rows: np.ndarray[Any, Any] | None = field(default=None, repr=False)
    """A backtest's rows of ``frame`` in the metrics' history (None: every row)."""

    @property
    def frame(self) -> pd.DataFrame:
        """The evaluation frame: the input's columns plus ``predicted_price`` and ``signal``.
        For a result of the dask engine, read whole from ``frame_dir`` on first use."""
        if self.held_frame is None:
            if self.frame_dir is None:
                raise ValueError("this result holds no evaluation frame")
            self.held_frame = pd.read_parquet(self.frame_dir)
        return self.held_frame

    @property
    def in_memory(self) -> bool:
        """Whether the evaluation frame is held in memory (the local engine)."""
        return self.frame_dir is None

    @property
    def model_params(self) -> dict[str, Any]:
        """The model's parameters."""
        return self.model.get_params()

    @property
    def policy_params(self) -> dict[str, Any]:
        """The signal policy's parameters."""
        return self.policy.get_params()

    @property
    def run_params(self) -> dict[str, Any]:
        """Parameters of the run itself: model and policy names, the test start."""
        params: dict[str, Any] = {"model_type": self.model.name, "policy": self.policy.name}
        if self.test_start is not None:
            params["test_start"] = self.test_start.date().isoformat()
        if self.backtest is not None:
            params.update(self.backtest.cutoffs.params())
        return {**params, **self.engine_params}

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter to log: run, model, policy and metric parameters, then the
        metrics' inferred values as ``inferred.<metric>.<name>``.

        A component parameter whose name another one already uses is prefixed with the
        component (``policy.x``, ``<metric>.x``).
        """
        out = dict(self.run_params)
        groups: list[tuple[str, dict[str, Any]]] = [
            ("model", self.model_params),
            ("policy", self.policy_params),
        ]
        groups += [(name, m.get_params()) for name, m in self.metric_components.items()]
        for prefix, values in groups:
            for key, value in values.items():
                if key in out and out[key] != value:
                    key = f"{prefix}.{key}"
                out[key] = value
        for metric, inferred in self.inferred.items():
            out.update({f"{INFERRED}.{metric}.{key}": v for key, v in inferred.items()})
        return out

    @cached_property
    def scored_mask(self) -> np.ndarray[Any, Any] | None:
        """The scored rows of ``frame`` (those on/after ``test_start``; a backtest's rows
        forecast at horizon 1), None for all."""
        if self.backtest is not None:
            return self.scored_rows
        if self.test_start is None:
            return None
        return (self.frame[DATE] >= self.test_start).to_numpy()

    @cached_property
    def scored_frame(self) -> pd.DataFrame:
        """The rows the metrics are computed over (all rows, or those on/after test_start);
        computed once."""
        mask = self.scored_mask
        return self.frame if mask is None else _rows(self.frame, mask)

    @cached_property
    def history(self) -> pd.DataFrame:
        """The rows the model was fitted on (``card_id, date, market_price``: every row, or
        those before test_start): the history the statistics and ``Metric.fit`` read."""
        rows = self.frame[[ID, DATE, PRICE]]
        if self.backtest is not None:
            kept = self.history_rows
            return rows if kept is None else _rows(rows, kept)
        mask = self.scored_mask
        return rows if mask is None else _rows(rows, ~mask)

    @cached_property
    def analyses(self) -> Analyses:
        """The overview, signal quality, strategy backtest and per-card table that the
        summary, plots, tables and terminal show: computed once, on first use, reusing the
        metrics' equal statistics (a result of the dask engine has them all, merged)."""
        wanted = AnalysisStatistics.of(metric_statistics(self.metric_components).values())
        if not self.in_memory:
            return wanted.analyses(self.states)
        known = dict(self.states)
        return wanted.analyses(
            statistic_states(wanted.all(), self.scored_frame, self.history, known)
        )

    def forecast_tables(self) -> Iterator[pd.DataFrame]:
        """A backtest's forecasts, one table per horizon: ``card_id, cutoff, date, horizon,
        market_price, predicted_price, signal`` of every target row (the local engine)."""
        figures = self.backtest
        if figures is None or figures.forecasts is None or figures.signals is None:
            raise ValueError("this result holds no backtest forecasts")
        forecasts, table = figures.forecasts, self.frame
        for h in range(1, figures.cutoffs.horizon + 1):
            mask, rows = forecasts.targets(h), forecasts.table_rows(h)
            which = slice(None) if mask is None else mask
            at = slice(None) if rows is None else rows
            codes = figures.signals[h - 1, which]
            ids = table[ID] if rows is None else table[ID].iloc[rows]
            yield pd.DataFrame(
                {
                    ID: ids.to_numpy(),
                    CUTOFF: forecasts.cutoff_dates(h, mask),
                    DATE: table[DATE].to_numpy()[at],
                    HORIZON: np.full(len(codes), h, dtype=np.int64),
                    PRICE: table[PRICE].to_numpy()[at],
                    PREDICTED: forecasts.predicted[h - 1, which],
                    SIGNAL: pd.Categorical.from_codes(codes, categories=pd.Index(list(SIGNALS))),
                }
            )

    @property
    def forecasts(self) -> pd.DataFrame:
        """A backtest's forecasts as one table (``forecast_tables`` together)."""
        return pd.concat(list(self.forecast_tables()), ignore_index=True)

    def price_pairs(self) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Market and predicted prices of the scored rows that have both: every such row when
        the frame is in memory, else the partitions' merged sample (``PriceSample``)."""
        if not self.in_memory:
            sample = self.states[Sample()]
            return sample.market, sample.predicted
        frame = self.scored_frame
        market = frame[PRICE].to_numpy(dtype=np.float64)
        predicted = frame[PREDICTED].to_numpy(dtype=np.float64)
        ok = ~(np.isnan(market) | np.isnan(predicted))
        return market[ok], predicted[ok]


def signals_from(raw: Any, n: int, policy: SignalPolicy) -> pd.Categorical:
    """Normalise ``policy``'s output to a categorical of BUY/SELL/HOLD (NaN where missing)."""
    if isinstance(raw, pd.Categorical) and tuple(raw.categories) == SIGNALS:
        signals = raw
    else:
        values = raw.to_numpy() if isinstance(raw, pd.Series) else np.asarray(raw, dtype=object)
        signals = pd.Categorical(values, categories=pd.Index(list(SIGNALS)))
        given = ~pd.isna(values)
        unknown = given & np.asarray(pd.isna(signals))
        if unknown.any():
            bad = values[np.flatnonzero(unknown)[0]]
            raise PluginError(
                f"{describe('policy', policy)} returned {bad!r}; signals must be BUY, SELL or HOLD"
            )
    if len(signals) != n:
        who = describe("policy", policy)
        raise PluginError(f"{who} returned {len(signals)} signals for {n} rows")
    return signals


def evaluate_prepared(
    table: pd.DataFrame,
    spec: EvaluationSpec,
    *,
    source: str = "data",
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate ``spec`` on a table validated by ``prepare_prices``: fit, predict, decide and
    score. Nothing is resolved or validated again, and ``table`` is not changed, so one
    validated table serves many evaluations (the local engine's, a partition's)."""
    report = progress or (lambda stage: None)
    return _evaluate(table.copy(deep=False), spec, source, report)


def _evaluate(
    table: pd.DataFrame, spec: EvaluationSpec, source: str, report: Callable[[str], None]
) -> EvaluationResult:
    """``evaluate_prepared`` on a shallow copy of the table (changed in place)."""
    model_obj, policy_obj, metric_objs, start = (
        spec.model,
        spec.policy,
        spec.metrics,
        spec.test_start,
    )
    dates = table[DATE]
    if start is not None and not (dates >= start).to_numpy().any():
        raise DataError(f"{source or 'data'}: no rows on or after test_start {start.date()}")
    cutoffs = spec.resolve(distinct_days(dates), source or "data")
    if not cutoffs.one_step:
        return _backtest(table, spec, cutoffs, report)
    history = table[[ID, DATE, PRICE]]
    # The one-step evaluation's numbers, unchanged: one fit (on every row, or on those before
    # test_start), then the predictions (one call for a model that answers cutoffs, one per
    # cutoff for any other). Only a refit asked for, of a model that learns, fits again at
    # the cutoffs (with only the rows each refit allows).
    once = spec.backtest.refit is None or (cutoffs.mode == "test start" and cutoffs.refit == ONCE)
    if not once and fits(model_obj):
        made = forecast(table, model_obj, cutoffs, report)
        fair, at_mask = made.on_table(1), made.target_mask(1)
        return _score(table, fair, at_mask, made.model, policy_obj, metric_objs, start, report)
    before = None
    if start is None:
        train, at, at_mask = history, history[[ID, DATE]], None
    else:
        before = (dates < start).to_numpy()
        at_mask = ~before
        train, at = _rows(history, before), _rows(history[[ID, DATE]], at_mask)

    report(f"fitting {model_obj.name}")
    model_obj = fitted(model_obj, train)

    report(f"predicting with {model_obj.name}")
    if not model_obj.answers_cutoffs:
        # an ordinary model is asked once per cutoff, with only the rows before the date it
        # predicts: it cannot look ahead
        made = forecast(table, model_obj, cutoffs, report, refit=False)
        fair = made.on_table(1)
        return _score(table, fair, at_mask, model_obj, policy_obj, metric_objs, start, report)
    predicted = predictions(model_obj, history, at)
    if at_mask is None:
        fair = predicted
    else:
        fair = np.full(len(table), np.nan)
        fair[at_mask] = predicted
    return _score(table, fair, at_mask, model_obj, policy_obj, metric_objs, start, report)


def _backtest(
    table: pd.DataFrame, spec: EvaluationSpec, cutoffs: Cutoffs, report: Callable[[str], None]
) -> EvaluationResult:
    """A backtest over horizons and cutoffs: forecasts, then every metric per horizon, pooled
    and per cutoff (``evaluation.horizons``)."""
    policy, metrics = spec.policy, spec.metrics
    made = forecast(table, spec.model, cutoffs, report)
    kept = None
    if cutoffs.history_end is not None:
        kept = made.periods <= cutoffs.history_end
    history = table[[ID, DATE, PRICE]] if kept is None else _rows(table[[ID, DATE, PRICE]], kept)

    def signals_of(market: np.ndarray[Any, Any], fair: np.ndarray[Any, Any]) -> pd.Categorical:
        decided = _guarded("policy", policy, "decide", lambda: policy.decide(market, fair))
        return signals_from(decided, len(market), policy)

    whole: list[pd.DataFrame] = []
    scored = score_backtest(
        table, made, policy, metrics, history, signals_of, report, first_frame=whole.append
    )
    pooled, by_horizon, by_cutoff = finalize_backtest(metrics, scored.states, cutoffs, scored.plain)
    figures = BacktestFigures(cutoffs, by_horizon, by_cutoff, made, scored.codes)
    result = EvaluationResult(
        figures.metric_keys({name: v.value for name, v in pooled.items()}),
        whole[0],
        made.model,
        policy,
        metrics,
        spec.test_start,
        scored.states,
        backtest=figures,
        scored_rows=made.target_mask(1),
        history_rows=kept,
    )
    result.inferred.update(inferred_of(pooled))
    return result


def _score(
    table: pd.DataFrame,
    fair: np.ndarray[Any, Any],
    at_mask: np.ndarray[Any, Any] | None,
    model: Model,
    policy: SignalPolicy,
    metrics: dict[str, Metric],
    start: pd.Timestamp | None,
    report: Callable[[str], None],
) -> EvaluationResult:
    """Decide, then score: the signals of ``policy`` and the ``metrics`` over a validated
    ``table`` (changed in place) with fair prices ``fair`` (``at_mask``: the predicted rows)."""
    market = table[PRICE].to_numpy()
    decided = _guarded("policy", policy, "decide", lambda: policy.decide(market, fair))
    signals = signals_from(decided, len(table), policy)
    if at_mask is not None:
        signals[~at_mask] = np.nan

    frame = table
    frame.insert(3, PREDICTED, fair)
    frame.insert(4, SIGNAL, pd.Series(signals, index=frame.index))
    result = EvaluationResult({}, frame, model, policy, metrics, start)
    scored = result.scored_frame
    outcomes = score_metrics(metrics, scored, result.history, result.states, report)
    result.metrics.update({name: outcome.value for name, outcome in outcomes.items()})
    result.inferred.update(inferred_of(outcomes))
    return result


class GivenPredictions(Model):
    """Stands for a model whose predictions were made elsewhere (``score_predictions``)."""

    name = "given_predictions"
    description = "Fair prices computed outside PokeWatch (e.g. by an MLflow pyfunc model)."


def score_predictions(
    data: pd.DataFrame,
    fair_price: Any,
    policy: str | SignalPolicy | type[SignalPolicy] = DEFAULT_POLICY,
    metrics: Sequence[str | Metric | type[Metric]] | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    source: str = "data",
) -> EvaluationResult:
    """Score fair prices made elsewhere: ``data`` is a price table (``card_id, date,
    market_price``), ``fair_price`` one value per row in its order. The policy decides and the
    metrics score exactly as in ``evaluate`` (every row is scored)."""
    table = prepare_prices(data, source)
    values = np.asarray(fair_price, dtype=np.float64).reshape(-1)
    if len(values) != len(table):
        raise ConfigError(f"{source}: {len(values)} fair prices for {len(table)} rows")
    if np.isinf(values).any():
        raise ConfigError(f"{source}: infinite fair prices")
    stand_in = GivenPredictions()
    _, policy_obj, metric_objs = resolve_components(stand_in, policy, metrics, params)
    return _score(table, values, None, stand_in, policy_obj, metric_objs, None, lambda _: None)


def _rows(frame: pd.DataFrame, mask: np.ndarray[Any, Any]) -> pd.DataFrame:
    """``frame.loc[mask]`` whose card ids keep their known codes (no factorising again)."""
    subset = frame.loc[mask]
    codes, cards = codes_of(frame[ID])
    remember(subset[ID], codes[mask], cards)
    return subset
