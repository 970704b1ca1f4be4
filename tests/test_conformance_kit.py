"""The conformance kit: the defaults pass it, and it catches real contract breaches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from pokewatch_core import Metric, Model, PriceIndex, SignalPolicy, Sums, get_plugins
from pokewatch_core.testing import check_metric, check_model, check_policy


@pytest.mark.parametrize("name", get_plugins().models.names())
def test_default_models_pass(name):
    check_model(get_plugins().models.get(name))


@pytest.mark.parametrize("name", get_plugins().metrics.names())
def test_default_metrics_pass(name):
    check_metric(get_plugins().metrics.get(name))


@pytest.mark.parametrize("name", get_plugins().policies.names())
def test_default_policies_pass(name):
    check_policy(get_plugins().policies.get(name))


def test_pytest_fixture_is_available(pokewatch_panel):
    assert {"card_id", "date", "market_price"} <= set(pokewatch_panel.columns)
    assert pokewatch_panel["market_price"].isna().any()


@dataclass
class PeeksToday(Model):
    """Uses the price of the day itself: look-ahead."""

    name: ClassVar[str] = "peeks"
    description: ClassVar[str] = "cheats"

    def predict(self, history, at):
        index = PriceIndex.build(history)
        pos, count = index.locate(at.assign(date=at["date"] + pd.Timedelta(days=1)))
        value = index.lag(pos, count, 1)
        _, n_before = index.locate(at)
        return np.where(n_before > 0, value, np.nan)


@dataclass
class IgnoresOrder(Model):
    name: ClassVar[str] = "sorted_output"
    description: ClassVar[str] = "returns predictions sorted by card, not in the order of `at`"

    def predict(self, history, at):
        index = PriceIndex.build(history)
        order = np.lexsort((at["date"].to_numpy(), at["card_id"].to_numpy()))
        pos, count = index.locate(at.iloc[order])
        return index.lag(pos, count, 1)


@dataclass
class WrongLength(Model):
    name: ClassVar[str] = "short"
    description: ClassVar[str] = "drops a row"

    def predict(self, history, at):
        return np.zeros(len(at) - 1)


@dataclass
class OrderSensitiveMetric(Metric):
    name: ClassVar[str] = "first_error"
    description: ClassVar[str] = "error of the first row only"

    def compute(self, frame):
        return float(frame["predicted_price"].iloc[0] - frame["market_price"].iloc[0])


@dataclass
class Shouty(SignalPolicy):
    name: ClassVar[str] = "shouty"
    description: ClassVar[str] = "lower-case signals"

    def decide(self, market_price, fair_price):
        return np.where(np.isnan(fair_price), None, "buy")


@dataclass
class AlwaysHold(SignalPolicy):
    name: ClassVar[str] = "always_hold"
    description: ClassVar[str] = "HOLD even without a fair price"
    margin: float = 0.0

    def decide(self, market_price, fair_price):
        return np.full(len(market_price), "HOLD", dtype=object)


@pytest.mark.parametrize(
    ("check", "component", "needle"),
    [
        (check_model, PeeksToday, "look-ahead"),
        (check_model, IgnoresOrder, "order of `at`"),
        (check_model, WrongLength, "predictions for"),
        (check_metric, OrderSensitiveMetric, "row order"),
        (check_policy, Shouty, "BUY, SELL or HOLD"),
        (check_policy, AlwaysHold, "missing exactly where"),
    ],
)
def test_kit_catches_breaches(check, component, needle):
    with pytest.raises(AssertionError, match=needle):
        check(component)


def _sums_metric(statistic_type, **fields):
    """A metric reading a ``statistic_type(**fields)`` whose value is (|error| sum, rows)."""

    @dataclass
    class Reads(Metric):
        name: ClassVar[str] = "reads"
        description: ClassVar[str] = "Mean |error| through a statistic."
        unit: ClassVar[str] = "price"
        greater_is_better: ClassVar[bool | None] = False

        def statistic(self):
            return statistic_type(**fields)

        def finalize(self, value):
            total, rows = value
            return total / rows if rows else float("nan")

    return Reads


class _AbsErrors:
    def compute(self, frame, history):
        error = (frame["predicted_price"] - frame["market_price"]).abs().dropna()
        return float(error.sum()), len(error)


@dataclass(frozen=True)
class WithNaN(_AbsErrors, Sums):
    threshold: float = float("nan")


def test_a_statistic_that_is_not_its_own_frozen_dataclass_is_refused():
    """A subclass without @dataclass inherits its parent's (field-less) equality: two
    different statistics would be one. The kit and the runner both refuse it."""
    from pokewatch_core import ConfigError, PluginError, evaluate

    class Plain(_AbsErrors, Sums):
        def __init__(self, scale: float = 1.0):
            object.__setattr__(self, "scale", scale)

    assert Plain(1.0) == Plain(2.0)  # the trap the check is for
    with pytest.raises(AssertionError, match="not a frozen dataclass of its own"):
        check_metric(_sums_metric(Plain))
    with pytest.raises((PluginError, ConfigError), match="not a frozen dataclass of its own"):
        evaluate("baseline_moving_average", make_frame(), metrics=[_sums_metric(Plain)()])


@dataclass(frozen=True)
class GroupsTheWhole(_AbsErrors, Sums):
    """Computes every group as if it were the whole frame: the law broken."""

    def compute_groups(self, frame, history, starts):
        return [self.compute(frame, history)] * (len(starts) - 1)


@dataclass(frozen=True)
class GroupsInOnePass(_AbsErrors, Sums):
    """Every group's sums in one pass, as the law asks."""

    def compute_groups(self, frame, history, starts):
        from pokewatch_core import group_sums

        error = (frame["predicted_price"] - frame["market_price"]).abs().to_numpy()
        return list(
            zip(
                group_sums(starts, np.nan_to_num(error)),
                group_sums(starts, ~np.isnan(error)).astype(int),
                strict=True,
            )
        )


def test_the_kit_checks_a_statistics_own_compute_groups():
    with pytest.raises(AssertionError, match="compute_groups gives group"):
        check_metric(_sums_metric(GroupsTheWhole))
    check_metric(_sums_metric(GroupsInOnePass))


def test_a_statistic_that_does_not_equal_itself_after_pickling_is_refused():
    """A NaN field: the statistic sent back by a cluster's partition would be another key."""
    with pytest.raises(AssertionError, match="no NaN"):
        check_metric(_sums_metric(WithNaN))


def test_a_metric_returning_text_is_not_a_number():
    from pokewatch_core import PluginError, evaluate

    @dataclass
    class Text(Metric):
        name: ClassVar[str] = "text"

        def compute(self, frame):
            return "1.5"

    with pytest.raises(PluginError, match="returned str, not a number"):
        evaluate("baseline_moving_average", make_frame(), metrics=[Text()])


def make_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "card_id": ["a"] * 6 + ["b"] * 6,
            "date": list(pd.date_range("2024-01-01", periods=6)) * 2,
            "market_price": [1.0, 2, 3, 4, 5, 6, 2, 2, 3, 3, 4, 4],
        }
    )


# Models that answer many cutoffs in one call (`answers_cutoffs`): the kit compares their
# answer with one call per cutoff and perturbs the prices after each cutoff.


@dataclass
class LastAsOfCutoff(Model):
    """Honest: the card's last observed price on or before the row's cutoff (inside its
    window), or strictly before its date without a cutoff column."""

    name: ClassVar[str] = "last_as_of_cutoff"
    description: ClassVar[str] = "last price as of each row's cutoff"
    answers_cutoffs: ClassVar[bool] = True

    def predict(self, history, at):
        index = PriceIndex.build(history)
        if "cutoff" not in at.columns:
            return index.lag(*index.locate(at), 1)
        since = at["window_start"].to_numpy() if "window_start" in at.columns else None
        return index.lag(*index.locate_asof(at["card_id"], at["cutoff"].to_numpy(), since), 1)


@dataclass
class IgnoresCutoff(LastAsOfCutoff):
    """Declares answers_cutoffs but reads the history up to each row's date: at horizon 2
    and more it sees prices after the cutoff."""

    name: ClassVar[str] = "ignores_cutoff"

    def predict(self, history, at):
        return super().predict(
            history, at.drop(columns=["cutoff", "window_start"], errors="ignore")
        )


@dataclass
class IgnoresWindowStart(LastAsOfCutoff):
    """No look-ahead, but the sliding window is ignored: not what one call per cutoff with the
    window's rows gives (here: a card with no price inside the window still gets one)."""

    name: ClassVar[str] = "ignores_window_start"

    def predict(self, history, at):
        return super().predict(history, at.drop(columns=["window_start"], errors="ignore"))


@dataclass
class OneCutoffForAll(LastAsOfCutoff):
    """Answers every row as of the latest cutoff in `at`: honest for a single cutoff (the
    perturbation cannot see it), a leak when cutoffs are mixed in one call."""

    name: ClassVar[str] = "one_cutoff_for_all"

    def predict(self, history, at):
        if "cutoff" in at.columns:
            at = at.assign(cutoff=at["cutoff"].max())
        return super().predict(history, at)


def test_an_honest_vectorised_model_passes_the_kit():
    check_model(LastAsOfCutoff)


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        (IgnoresCutoff, r"answers_cutoffs: look-ahead: changing prices after cutoff \d{4}-"),
        (IgnoresWindowStart, r"differs from one call per cutoff .* window_start \d{4}-"),
        (OneCutoffForAll, r"differs from one call per cutoff with only the history up to it"),
    ],
)
def test_the_kit_catches_a_vectorised_model_that_breaks_its_cutoffs(model, needle):
    with pytest.raises(AssertionError, match=needle) as caught:
        check_model(model)
    assert "\n" not in str(caught.value)  # one line


def test_the_kit_checks_cutoffs_only_for_models_that_answer_them():
    """The same leaky predict without `answers_cutoffs` is an ordinary model: the runner
    never hands it a cutoff column, so the kit does not either (and it passes)."""

    @dataclass
    class Ordinary(IgnoresCutoff):
        name: ClassVar[str] = "ordinary"
        answers_cutoffs: ClassVar[bool] = False

    check_model(Ordinary)
