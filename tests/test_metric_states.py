"""Mergeable metric states: the state of card-disjoint pieces, merged and finalized, is the
metric of the whole frame (the law a partitioned engine relies on)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch_core import Metric, evaluate, get_plugins
from pokewatch_core.components import has_state
from pokewatch_core.data.naive import FITTING
from pokewatch_core.testing import check_metric
from tests.conftest import panels

# the default metrics whose states this suite covers (sums and counts)
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


def stateful_defaults() -> list[str]:
    return [n for n in get_plugins().metrics.names() if has_state(get_plugins().metrics.get(n)())]


def same(a: float, b: float) -> bool:
    """Equal within 1e-9 relative (and 1e-12 absolute, for values that are 0 in exact
    arithmetic, such as the skill of a model exactly as good as the naive forecast)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def fitted(name: str, frame: pd.DataFrame, fitting: np.ndarray) -> Metric:
    """A fresh metric, fitted (if it learns) on ``frame``'s rows as its history."""
    metric = get_plugins().metrics.get(name)()
    if type(metric).fit is not Metric.fit:
        history = frame[["card_id", "date", "market_price"]].assign(**{FITTING: fitting})
        metric = metric.fit(history) or metric
    return metric


def piecewise(name: str, frame: pd.DataFrame, start: pd.Timestamp | None, labels) -> float:
    """The metric from the merged states of the pieces of ``frame`` (one per label), each
    fitted on its own rows only, as a partition of a cluster is."""
    states = []
    for label in np.unique(labels):
        piece = frame.loc[labels == label]
        fitting = np.ones(len(piece), bool) if start is None else (piece["date"] < start).to_numpy()
        scored = piece if start is None else piece.loc[~fitting]
        states.append(fitted(name, piece, fitting).state(scored))
    finisher = get_plugins().metrics.get(name)()
    return finisher.finalize(reduce(finisher.merge, states))


def test_every_default_metric_declares_a_state():
    for name in SUMMED:
        assert has_state(get_plugins().metrics.get(name)()), name
    assert stateful_defaults() == get_plugins().metrics.names()


def test_metrics_sharing_a_key_share_the_state_they_finalize():
    # one state object serves every relative metric: each finalizes it to its own value
    frame = evaluate("baseline_moving_average", _sample()).frame
    relative = ["mae", "wape", "mase", "skill_vs_naive", "directional_accuracy"]
    keys = {get_plugins().metrics.get(n)().state_key() for n in relative}
    assert len(keys) == 1
    fitting = np.ones(len(frame), bool)
    shared = fitted("mae", frame, fitting).state(frame)
    for name in relative:
        assert same(
            fitted(name, frame, fitting).finalize(shared),
            fitted(name, frame, fitting).compute(frame),
        )


def _sample():
    from pokewatch_core import embedded_sample_path

    return embedded_sample_path()


@settings(max_examples=30, deadline=None)
@given(
    data=panels(max_cards=6, max_days=20),
    seed=st.integers(0, 2**32 - 1),
    pieces=st.integers(1, 4),
    cut=st.sampled_from([None, 5, 10, 15]),
)
def test_merged_states_of_card_disjoint_pieces_equal_the_whole(data, seed, pieces, cut):
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
def test_the_state_of_no_rows_is_neutral(name):
    frame = evaluate("baseline_moving_average", _sample()).frame
    fitting = np.ones(len(frame), bool)
    metric = fitted(name, frame, fitting)
    empty = metric.state(frame.iloc[:0])
    whole = metric.state(frame)
    assert same(metric.finalize(metric.merge(empty, whole)), metric.compute(frame))
    assert same(metric.finalize(metric.merge(whole, empty)), metric.compute(frame))


@dataclass
class MeanOfMeans(Metric):
    """A state that does not merge exactly: the mean of two means is not the mean."""

    name: ClassVar[str] = "mean_error_of_means"
    description: ClassVar[str] = "Mean predicted - market, merged wrongly (price)."
    unit: ClassVar[str] = "price"

    def state(self, frame: pd.DataFrame) -> float:
        return float((frame["predicted_price"] - frame["market_price"]).mean())

    def merge(self, a: float, b: float) -> float:
        return (a + b) / 2

    def finalize(self, state: float) -> float:
        return state


def test_the_conformance_kit_catches_a_state_that_does_not_merge_exactly():
    with pytest.raises(AssertionError, match=r"finalize\(merge\(state\(a\), state\(b\)\)\)"):
        check_metric(MeanOfMeans)
    for name in SUMMED:
        check_metric(get_plugins().metrics.get(name))
