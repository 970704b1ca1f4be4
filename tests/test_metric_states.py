"""Statistics, the mergeable values metrics read: the values of card-disjoint pieces, merged and
finalized, are the metric of the whole frame (the law a partitioned engine relies on); equal
statistics are computed once per evaluation; old-style metrics that only compute still work."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch_core import (
    DATE,
    ID,
    PREDICTED,
    PRICE,
    Metric,
    MetricValue,
    NaiveForecast,
    Quality,
    Statistic,
    Strategy,
    Sums,
    evaluate,
    get_plugins,
)
from pokewatch_core.testing import check_metric
from tests.conftest import make_panel, panels

# the default metrics whose statistics are sums and counts
SUMMED = [
    "rmse",
    "mape",
    "dataset_size",
    "coverage_rate",
    "buy_rate",
    "sell_rate",
    "hold_rate",
    "mae",
    "wape",
    "mase",
    "skill_vs_naive",
    "directional_accuracy",
]
RELATIVE = ["mae", "wape", "mase", "skill_vs_naive", "directional_accuracy"]


def metric(name: str, **params: Any) -> Metric:
    return get_plugins().metrics.get(name).from_params(params)


def stateful_defaults() -> list[str]:
    return [n for n in get_plugins().metrics.names() if metric(n).statistic() is not None]


def same(a: float, b: float) -> bool:
    """Equal within 1e-9 relative (and 1e-12 absolute, for values that are 0 in exact
    arithmetic, such as the skill of a model exactly as good as the naive forecast)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def value_of(piece: pd.DataFrame, start: pd.Timestamp | None, statistic: Statistic[Any]) -> Any:
    """The statistic over ``piece``'s scored rows, its history the rows the model is fitted on
    (all, or those before ``start``), as a partition of a cluster computes it."""
    if start is None:
        return statistic.compute(piece, piece[[ID, DATE, PRICE]])
    before = (piece[DATE] < start).to_numpy()
    return statistic.compute(piece.loc[~before], piece.loc[before, [ID, DATE, PRICE]])


def piecewise(name: str, frame: pd.DataFrame, start: pd.Timestamp | None, labels) -> float:
    """The metric from the merged values of the pieces of ``frame`` (one per label)."""
    finisher = metric(name)
    statistic = finisher.statistic()
    assert statistic is not None
    values = [value_of(frame.loc[labels == label], start, statistic) for label in np.unique(labels)]
    return float(finisher.finalize(reduce(statistic.merge, values)))


def _sample():
    from pokewatch_core import embedded_sample_path

    return embedded_sample_path()


def test_every_default_metric_declares_a_statistic():
    for name in SUMMED:
        assert metric(name).statistic() is not None, name
    assert stateful_defaults() == get_plugins().metrics.names()


def test_statistics_are_specifications_equal_by_their_fields():
    assert Quality(1) == Quality(horizon=1) and hash(Quality(1)) == hash(Quality(horizon=1))
    assert Quality(1) != Quality(2) and Strategy(0.0) == Strategy(0) != Strategy(0.01)
    assert {metric(n).statistic() for n in RELATIVE} == {NaiveForecast()}
    assert metric("buy_precision", horizon=3).statistic() == Quality(3)
    assert (
        metric("turnover", fee_pct=0.01).statistic()
        == metric("strategy_sharpe", fee_pct=0.01).statistic()
    )


@pytest.mark.parametrize(
    ("names", "statistic", "calls"),
    [
        (RELATIVE, NaiveForecast, 1),
        (
            [
                "buy_precision",
                "sell_precision",
                "buy_recall",
                "sell_recall",
                "buy_lift",
                "sell_lift",
                "mean_forward_return_buy",
                "mean_forward_return_sell",
            ],
            Quality,
            1,
        ),
        (
            ["strategy_total_return", "strategy_sharpe", "strategy_max_drawdown", "turnover"],
            Strategy,
            1,
        ),
    ],
)
def test_equal_statistics_are_computed_once_per_evaluation(monkeypatch, names, statistic, calls):
    seen: list[Statistic[Any]] = []
    real = statistic.compute

    def counted(self, frame, history):
        seen.append(self)
        return real(self, frame, history)

    monkeypatch.setattr(statistic, "compute", counted)
    result = evaluate("baseline_moving_average", make_panel(cards=4, days=30), metrics=names)
    _ = result.analyses  # the analyses reuse an equal statistic of the metrics
    assert len(seen) == calls, seen


def test_metrics_sharing_a_statistic_finalize_one_value_each_to_their_own():
    frame = evaluate("baseline_moving_average", _sample()).frame
    shared = NaiveForecast().compute(frame, frame[[ID, DATE, PRICE]])
    for name in RELATIVE:
        assert same(float(metric(name).finalize(shared)), float(metric(name).compute(frame)))


@settings(max_examples=15, deadline=None)
@given(
    data=panels(max_cards=6, max_days=20),
    seed=st.integers(0, 2**32 - 1),
    pieces=st.integers(1, 4),
    cut=st.sampled_from([None, 5, 10, 15]),
)
def test_merged_values_of_card_disjoint_pieces_equal_the_whole(data, seed, pieces, cut):
    start = None if cut is None else pd.Timestamp("2025-03-01") + pd.Timedelta(days=cut)
    if start is not None and not (data["date"] >= start).any():
        start = None  # no scored period: the evaluation refuses it
    result = evaluate("baseline_moving_average", data, test_start=start)
    frame = result.frame
    cards = frame["card_id"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    piece_of = {card: rng.integers(pieces) for card in np.unique(cards)}
    labels = np.array([piece_of[c] for c in cards])
    for name in stateful_defaults():
        whole = result.metrics[name]
        merged = piecewise(name, frame, start, labels)
        assert same(merged, whole), (name, merged, whole)


@pytest.mark.parametrize("name", SUMMED)
def test_the_value_of_no_rows_is_neutral(name):
    frame = evaluate("baseline_moving_average", _sample()).frame
    obj = metric(name)
    statistic = obj.statistic()
    assert statistic is not None
    empty = statistic.compute(frame.iloc[:0], frame.iloc[:0][[ID, DATE, PRICE]])
    whole = statistic.compute(frame, frame[[ID, DATE, PRICE]])
    expected = float(obj.compute(frame))
    assert same(float(obj.finalize(statistic.merge(empty, whole))), expected)
    assert same(float(obj.finalize(statistic.merge(whole, empty))), expected)


def test_get_params_depend_on_the_constructor_only():
    sharpe = metric("strategy_sharpe")
    before = sharpe.get_params()
    result = evaluate("baseline_moving_average", make_panel(cards=3, days=30), metrics=[sharpe])
    assert sharpe.get_params() == before == {"fee_pct": 0.0, "periods_per_year": None}
    inferred = result.inferred["strategy_sharpe"]["periods_per_year"]
    assert result.params["inferred.strategy_sharpe.periods_per_year"] == inferred == 365.0
    assert result.params["periods_per_year"] is None  # the user's (unset) parameter


@dataclass(frozen=True)
class AbsErrors(Sums[tuple[float, int]]):
    """Sum of |error| and scored rows: merged by adding, no merge written."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> tuple[float, int]:
        error = (frame[PREDICTED] - frame[PRICE]).abs().dropna()
        return float(error.sum()), len(error)


@dataclass
class MyMae(Metric):
    """A third-party metric on a ``Sums`` statistic of its own."""

    name: ClassVar[str] = "my_mae"
    description: ClassVar[str] = "Mean |predicted - market| (price)."
    unit: ClassVar[str] = "price"
    greater_is_better: ClassVar[bool | None] = False

    def statistic(self) -> AbsErrors:
        return AbsErrors()

    def finalize(self, value: tuple[float, int]) -> float:
        total, count = value
        return total / count if count else float("nan")


@dataclass
class MedianError(Metric):
    """An old-style metric: ``compute`` only, with a ``fit`` on the history."""

    name: ClassVar[str] = "median_error_seen"
    description: ClassVar[str] = "Median |predicted - market| (price)."
    unit: ClassVar[str] = "price"
    seen: ClassVar[list[pd.DataFrame]] = []

    def fit(self, history: pd.DataFrame) -> MedianError:
        self.seen.append(history)
        return self

    def compute(self, frame: pd.DataFrame) -> float:
        return float((frame[PREDICTED] - frame[PRICE]).abs().median())


def test_sums_and_compute_only_metrics_score_like_the_defaults():
    data = make_panel(cards=5, days=30)
    result = evaluate(
        "baseline_moving_average",
        data,
        metrics=["mae", MyMae, MedianError],
        test_start="2024-01-20",
    )
    assert result.metrics["my_mae"] == pytest.approx(result.metrics["mae"], rel=1e-12)
    error = (result.scored_frame[PREDICTED] - result.scored_frame[PRICE]).abs()
    assert result.metrics["median_error_seen"] == pytest.approx(error.median())
    check_metric(MyMae)
    check_metric(MedianError)


def test_a_compute_only_metric_is_fitted_on_the_models_history(monkeypatch):
    from pokewatch_plugins.baseline import BaselineMovingAverage

    given: list[pd.DataFrame] = []
    real = BaselineMovingAverage.fit

    def fit(self, history):
        given.append(history)
        return real(self, history)

    monkeypatch.setattr(BaselineMovingAverage, "fit", fit)
    MedianError.seen.clear()
    evaluate(
        "baseline_moving_average",
        make_panel(cards=3, days=30),
        metrics=[MedianError],
        test_start="2024-01-15",
    )
    (model_history,), (metric_history,) = given, MedianError.seen
    assert list(metric_history.columns) == [ID, DATE, PRICE]  # no extra column
    pd.testing.assert_frame_equal(metric_history, model_history)


def test_a_metric_value_carries_inferred_values():
    value = MetricValue(1.5, {"k": 2})
    assert float(value) == 1.5 and value.inferred == {"k": 2}


@dataclass(frozen=True)
class MeansOf(Statistic[float]):
    """A statistic that does not merge exactly: the mean of two means is not the mean."""

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> float:
        return float((frame[PREDICTED] - frame[PRICE]).mean())

    def merge(self, a: float, b: float) -> float:
        return (a + b) / 2


@dataclass
class MeanOfMeans(Metric):
    name: ClassVar[str] = "mean_error_of_means"
    description: ClassVar[str] = "Mean predicted - market, merged wrongly (price)."
    unit: ClassVar[str] = "price"

    def statistic(self) -> MeansOf:
        return MeansOf()

    def finalize(self, value: float) -> float:
        return value


@dataclass(frozen=True)
class Unequal(Statistic[float]):
    """A field that differs for every instance: equal parameters give unequal statistics."""

    token: object = field(default_factory=object)

    def compute(self, frame: pd.DataFrame, history: pd.DataFrame) -> float:
        return 0.0


@dataclass
class UnequalSpecs(MeanOfMeans):
    name: ClassVar[str] = "unequal_specs"

    def statistic(self) -> Unequal:  # type: ignore[override]
        return Unequal()


def test_the_conformance_kit_catches_a_statistic_that_does_not_merge_exactly():
    with pytest.raises(AssertionError, match=r"finalize\(merge\(compute\(a\), compute\(b\)\)\)"):
        check_metric(MeanOfMeans)
    with pytest.raises(AssertionError, match="equal parameters give unequal statistics"):
        check_metric(UnequalSpecs)
    for name in SUMMED:
        check_metric(get_plugins().metrics.get(name))
