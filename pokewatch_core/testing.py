"""Conformance kit for plugin authors: call these from your tests.

    from pokewatch_core.testing import check_model, check_metric, check_policy

    def test_my_model_keeps_the_contract():
        check_model(MyModel)

Each check raises ``AssertionError`` naming the broken rule. ``check_model`` uses hypothesis
(install ``pokewatch[testing]``) to search for look-ahead. The pytest plugin registered by
this package adds the fixture ``pokewatch_panel`` (a small realistic price table).
"""

from __future__ import annotations

import pickle
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.columns import CUTOFF, HORIZON, NAIVE, WINDOW_START
from pokewatch_core.components import SIGNALS, UNITS, Component, Metric, Model, SignalPolicy
from pokewatch_core.data.sample_data import generate_prices
from pokewatch_core.data.tables import DATE, ID, PREDICTED, PRICE, SIGNAL, prepare_prices
from pokewatch_core.statistics import Statistic, is_specification

__all__ = ["check_metric", "check_model", "check_policy", "example_panel"]


def example_panel(cards: int = 6, days: int = 40, seed: int = 3) -> pd.DataFrame:
    """A small validated price table with gaps and NaN prices, rows shuffled."""
    frame = generate_prices(cards=cards, days=days, seed=seed)
    frame = frame[[ID, DATE, PRICE]].astype({ID: "str"})
    frame.loc[frame.index[5::17], PRICE] = np.nan  # a few unknown prices, never a whole card
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return prepare_prices(frame, "example panel")


def _instance(component: Any, base: type[Component]) -> Any:
    cls = component if isinstance(component, type) else type(component)
    assert isinstance(cls, type) and issubclass(cls, base), (
        f"{component!r} is not a {base.__name__} subclass"
    )
    assert isinstance(cls.name, str) and cls.name.strip(), f"{cls.__qualname__} has no name"
    assert isinstance(cls.description, str) and cls.description.strip(), (
        f"{cls.name}: description is empty"
    )
    assert "\n" not in cls.description.strip(), f"{cls.name}: description is not one line"
    return component if not isinstance(component, type) else cls()


def _check_params(obj: Component) -> None:
    cls = type(obj)
    specs = cls.param_specs()
    params = obj.get_params()
    assert set(params) == set(specs), f"{cls.name}: get_params() keys differ from the constructor"
    as_text = {k: "none" if v is None else str(v) for k, v in params.items()}
    again = cls.from_params(as_text).get_params()
    assert again == params, f"{cls.name}: parameters do not round-trip through strings: {again}"
    defaults = cls.from_params({}).get_params()
    expected = {k: s.default for k, s in specs.items()}
    assert defaults == expected, f"{cls.name}: defaults differ from the annotated ones"


def _same(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


def _predict(model: Model, history: pd.DataFrame, at: pd.DataFrame) -> np.ndarray[Any, Any]:
    raw = model.predict(history, at)
    values = np.asarray(raw, dtype=np.float64).reshape(-1)
    assert len(values) == len(at), (
        f"{model.name}: {len(values)} predictions for {len(at)} rows of `at`"
    )
    assert not np.isinf(values).any(), f"{model.name}: infinite predictions"
    return values


def check_model(
    model: type[Model] | Model, data: pd.DataFrame | None = None, examples: int = 30
) -> None:
    """Check a model against the contract: metadata, parameters, output length and dtype, row
    order, determinism, NaN and unknown-card handling, and no look-ahead (hypothesis). A model
    that declares ``answers_cutoffs`` also: its answer for many cutoffs in one call equals
    one call per cutoff with only the history that cutoff allows, and changing prices after
    a cutoff changes none of that cutoff's predictions (hypothesis)."""
    obj: Model = _instance(model, Model)
    _check_params(obj)
    data = example_panel() if data is None else prepare_prices(data, "check data")
    history = data[[ID, DATE, PRICE]]
    obj = obj.fit(history) or obj
    at = history[[ID, DATE]]
    first = _predict(obj, history, at)
    assert _same(first, _predict(obj, history, at)), f"{obj.name}: predict is not deterministic"
    assert not np.isnan(first).all(), f"{obj.name}: no prediction at all on the example panel"

    order = np.random.default_rng(0).permutation(len(at))
    shuffled = _predict(obj, history, at.iloc[order].reset_index(drop=True))
    assert _same(shuffled, first[order]), f"{obj.name}: predictions do not follow the order of `at`"

    unknown = pd.DataFrame({ID: ["__no_such_card__"], DATE: [history[DATE].max()]})
    assert np.isnan(_predict(obj, history, unknown)).all(), (
        f"{obj.name}: an unknown card must give NaN, not a value"
    )
    earliest = history.groupby(ID)[DATE].transform("min") == history[DATE]
    assert np.isnan(first[earliest.to_numpy()]).all(), (
        f"{obj.name}: a card's first date has no earlier price, so its prediction must be NaN"
    )
    _check_no_look_ahead(obj, history, examples)
    if obj.answers_cutoffs:
        _check_no_look_ahead_of_cutoffs(obj, history, examples)
        _check_cutoffs(obj, history)


HORIZONS = 3  # the kit's cutoffs: each row's date minus 1, 2 and 3 days


def _with_cutoffs(history: pd.DataFrame, window: int | None) -> pd.DataFrame:
    """``at`` as a backtest hands it to a model with ``answers_cutoffs``: every row of
    ``history`` once per horizon, its ``cutoff`` that many days before its date (and, with a
    sliding ``window`` of days, its ``window_start``)."""
    parts = []
    for h in range(1, HORIZONS + 1):
        rows = history[[ID, DATE]]
        cutoff = (rows[DATE] - pd.Timedelta(days=h)).to_numpy().astype("datetime64[ns]")
        parts.append(rows.assign(**{CUTOFF: cutoff}))
    at = pd.concat(parts, ignore_index=True)
    if window is not None:
        start = at[CUTOFF] - pd.Timedelta(days=window - 1)
        at[WINDOW_START] = start.to_numpy().astype("datetime64[ns]")
    return at


def _allowed_history(history: pd.DataFrame, cutoff: Any, start: Any = None) -> pd.DataFrame:
    """The rows of ``history`` a model at ``cutoff`` may see (on or after ``start``)."""
    keep = history[DATE] <= cutoff
    if start is not None:
        keep &= history[DATE] >= start
    allowed: pd.DataFrame = history.loc[keep]
    return allowed


def _check_cutoffs(model: Model, history: pd.DataFrame) -> None:
    """``predict(history, at with a cutoff column)`` equals, row for row and bit for bit, the
    calls the runner makes for a model without ``answers_cutoffs``: per cutoff,
    ``predict(history up to the cutoff, at without the cutoff column)``; with and without
    ``window_start``; and it follows the order of ``at``."""
    window = max(model.history_needed(), 1)  # the shortest sliding window a run allows
    for size in (None, window, window + 3):
        at = _with_cutoffs(history, size)
        answered = _predict(model, history, at)
        keys = [CUTOFF] if size is None else [CUTOFF, WINDOW_START]
        expected = np.full(len(at), np.nan)
        for key, rows in at.groupby(keys, sort=True).groups.items():
            cutoff, start = key if isinstance(key, tuple) else (key, None)
            where = at.index.get_indexer(rows)
            allowed = _allowed_history(history, cutoff, start)
            if len(allowed):  # no row allowed: an ordinary model is not asked (NaN)
                expected[where] = _predict(model, allowed, at.loc[rows, [ID, DATE]])
        differ = ~((answered == expected) | (np.isnan(answered) & np.isnan(expected)))
        if differ.any():
            i = int(np.flatnonzero(differ)[0])
            row = at.iloc[i]
            start_text = "" if size is None else f", window_start {row[WINDOW_START].date()}"
            raise AssertionError(
                f"{model.name}: answers_cutoffs: predict(history, at with a cutoff column) "
                f"differs from one call per cutoff with only the history up to it at "
                f"{int(differ.sum())} of {len(at)} rows, e.g. card {row[ID]!r}, date "
                f"{row[DATE].date()}, cutoff {row[CUTOFF].date()}{start_text}: "
                f"{float(answered[i])!r} vs {float(expected[i])!r}"
            )
        order = np.random.default_rng(1).permutation(len(at))
        shuffled = _predict(model, history, at.iloc[order].reset_index(drop=True))
        if not _same(shuffled, answered[order]):
            raise AssertionError(
                f"{model.name}: answers_cutoffs: predictions do not follow the order of `at` "
                "when it has a cutoff column"
            )


def _check_no_look_ahead_of_cutoffs(model: Model, history: pd.DataFrame, examples: int) -> None:
    """Hypothesis perturbs every price after a cutoff (values and NaNs): the predictions of
    the rows of ``at`` with that cutoff (any horizon, with or without ``window_start``) must
    not change."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    dates = np.sort(history[DATE].unique())
    n = len(history)
    window = max(model.history_needed(), 1)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        database=None,
    )
    @given(
        cut=st.integers(0, len(dates) - 2),
        seed=st.integers(0, 2**31 - 1),
        nan_share=st.floats(0, 0.5),
        sliding=st.booleans(),
    )
    def no_look_ahead(cut: int, seed: int, nan_share: float, sliding: bool) -> None:
        cutoff = pd.Timestamp(dates[cut])
        at = _with_cutoffs(history, window if sliding else None)
        at = at.loc[at[CUTOFF] == cutoff].reset_index(drop=True)
        if not len(at):
            return
        before = _predict(model, history, at)
        rng = np.random.default_rng(seed)
        later = (history[DATE] > cutoff).to_numpy()
        changed = history.copy()
        noise = rng.uniform(0.01, 10_000, n)
        noise[rng.random(n) < nan_share] = np.nan
        changed.loc[later, PRICE] = noise[later]
        after = _predict(model, changed, at)
        if not _same(before, after):  # raised, not asserted: one line under pytest too
            changed_rows = ~((before == after) | (np.isnan(before) & np.isnan(after)))
            raise AssertionError(
                f"{model.name}: answers_cutoffs: look-ahead: changing prices after cutoff "
                f"{cutoff.date()} changed the predictions of {int(changed_rows.sum())} of "
                f"{len(at)} rows with that cutoff"
            )

    no_look_ahead()


def _check_no_look_ahead(model: Model, history: pd.DataFrame, examples: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    dates = np.sort(history[DATE].unique())
    n = len(history)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # the first breach found is reported as is:
        database=None,  # shrinking a whole panel takes seconds and says nothing more
    )
    @given(
        cut=st.integers(1, len(dates) - 1),
        seed=st.integers(0, 2**31 - 1),
        nan_share=st.floats(0, 0.5),
    )
    def no_look_ahead(cut: int, seed: int, nan_share: float) -> None:
        cutoff = dates[cut]
        at = history.loc[history[DATE] == cutoff, [ID, DATE]]
        before = _predict(model, history, at)
        rng = np.random.default_rng(seed)
        later = (history[DATE] >= cutoff).to_numpy()
        changed = history.copy()
        noise = rng.uniform(0.01, 10_000, n)
        noise[rng.random(n) < nan_share] = np.nan
        changed.loc[later, PRICE] = noise[later]
        after = _predict(model, changed, at)
        assert _same(before, after), (
            f"{model.name}: look-ahead: changing prices on or after {pd.Timestamp(cutoff).date()} "
            "changed that date's predictions"
        )

    no_look_ahead()


def _evaluation_frame(seed: int = 0, n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    market = rng.uniform(0.1, 500, n)
    market[rng.random(n) < 0.1] = np.nan
    predicted = market * rng.uniform(0.7, 1.3, n)
    predicted[rng.random(n) < 0.15] = np.nan
    codes = rng.integers(0, 3, n)
    codes[np.isnan(market) | np.isnan(predicted)] = -1
    cards = np.array([f"card_{i}" for i in range(6)])[rng.integers(0, 6, n)]
    day = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.permutation(n), unit="D")
    return pd.DataFrame(
        {
            ID: cards,
            DATE: day,
            PRICE: market,
            PREDICTED: predicted,
            SIGNAL: pd.Categorical.from_codes(codes, categories=pd.Index(list(SIGNALS))),
        }
    )


def check_metric(metric: type[Metric] | Metric, frame: pd.DataFrame | None = None) -> None:
    """Check a metric: metadata (a unit from ``UNITS``, a direction), parameters (and
    ``get_params`` depending on the constructor only), a float result, determinism, row-order
    invariance, NaN predictions, and no error (NaN allowed) on a frame with no scored rows.
    The frame's ``card_id`` holds plain strings, as in a run.

    A metric that declares a statistic must name it by value (equal parameters give equal,
    hashable statistics) and the statistic must merge exactly: its values over card-disjoint
    pieces, pickled and merged, finalize to the whole frame's value, without and with a test
    start (the history then the rows before it)."""
    obj: Metric = _instance(metric, Metric)
    assert obj.unit in UNITS, f"{obj.name}: unit {obj.unit!r} is not one of {', '.join(UNITS)}"
    assert obj.greater_is_better in (True, False, None), (
        f"{obj.name}: greater_is_better must be True, False or None"
    )
    _check_params(obj)
    params = obj.get_params()
    frame = _evaluation_frame() if frame is None else frame
    statistic = obj.statistic()
    if statistic is None and type(obj).fit is not Metric.fit:  # learns from the history first
        obj = obj.fit(frame[[ID, DATE, PRICE]]) or obj
    value = _float(obj, obj.compute(frame))
    again = _float(obj, obj.compute(frame))
    assert value == again or (np.isnan(value) and np.isnan(again)), f"{obj.name}: not deterministic"
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(frame))
        shuffled = _float(obj, obj.compute(frame.iloc[order].reset_index(drop=True)))
        assert np.isclose(shuffled, value, rtol=1e-9, equal_nan=True), (
            f"{obj.name}: depends on row order ({value} vs {shuffled})"
        )
    empty = frame.assign(
        predicted_price=np.nan, signal=pd.Categorical([None] * len(frame), categories=list(SIGNALS))
    )
    _float(obj, obj.compute(empty))  # must not raise
    assert obj.get_params() == params, (
        f"{obj.name}: get_params() changed after compute(); it must depend on the constructor "
        "only (return inferred values beside the value: MetricValue)"
    )
    if statistic is not None:
        _check_statistic(obj, statistic, frame)


def _float(obj: Metric, value: Any) -> float:
    assert isinstance(value, float | int | np.floating | np.integer), (
        f"{obj.name}: returned {type(value).__name__}, not a float"
    )
    return float(value)


def _check_statistic(obj: Metric, statistic: Statistic[Any], frame: pd.DataFrame) -> None:
    """Equal specs for equal parameters, and the merge law on card-disjoint pieces of
    ``frame`` without and with a test start; values must survive pickling."""
    assert isinstance(statistic, Statistic), (
        f"{obj.name}: statistic() returned {type(statistic).__name__}, not a Statistic"
    )
    assert is_specification(statistic), (
        f"{obj.name}: its statistic {type(statistic).__name__} is not a frozen dataclass of its "
        "own: decorate it with @dataclass(frozen=True)"
    )
    twin = type(obj).from_params(obj.get_params()).statistic()
    try:  # as the partitions of a cluster send it
        shipped = pickle.loads(pickle.dumps(statistic))
    except Exception as exc:
        raise AssertionError(f"{obj.name}: its statistic cannot be pickled ({exc})") from exc
    for other in (twin, shipped):
        assert other == statistic and hash(other) == hash(statistic), (
            f"{obj.name}: equal parameters give unequal statistics ({other!r} vs "
            f"{statistic!r}): make the statistic a frozen dataclass of its specification, "
            "with fields that equal themselves (no NaN)"
        )
    cards = np.asarray(frame[ID].astype(str))
    first = np.isin(cards, np.unique(cards)[::2])
    dates = frame[DATE]
    for start in (None, dates.sort_values().iloc[len(frame) // 2]):
        fitting = np.zeros(len(frame), dtype=bool) if start is None else (dates < start).to_numpy()

        def value_of(rows: pd.DataFrame, fit: np.ndarray[Any, Any], start: Any = start) -> Any:
            if start is None:
                return statistic.compute(rows, rows[[ID, DATE, PRICE]])
            return statistic.compute(rows.loc[~fit], rows.loc[fit, [ID, DATE, PRICE]])

        whole = _float(obj, obj.finalize(value_of(frame, fitting)))
        pieces = [
            pickle.loads(pickle.dumps(value_of(frame.loc[side], fitting[side])))
            for side in (first, ~first)
        ]
        merged = _float(obj, obj.finalize(statistic.merge(*pieces)))
        assert np.isclose(merged, whole, rtol=1e-9, atol=1e-12, equal_nan=True), (
            f"{obj.name}: finalize(merge(compute(a), compute(b))) is {merged}, "
            f"finalize(compute(a + b)) {whole} (frames a and b of different cards"
            f"{'' if start is None else ', with a test start'})"
        )
    if type(statistic).compute_groups is not Statistic.compute_groups:
        _check_groups(obj, statistic, frame)


def _check_groups(obj: Metric, statistic: Statistic[Any], frame: pd.DataFrame) -> None:
    """A statistic's own ``compute_groups`` equals ``compute`` on each group, on groups as a
    backtest stacks them (several cutoffs' rows, each sorted by card and date) and as given
    (unsorted), with the evaluation columns only (``naive_price``, ``horizon``, ``cutoff``)."""
    rng = np.random.default_rng(7)
    parts = []
    for group in range(4):
        rows = frame.sample(frac=0.6, random_state=group).reset_index(drop=True)
        naive = rows[PRICE].to_numpy(dtype=np.float64) * rng.uniform(0.8, 1.2, len(rows))
        naive[rng.random(len(rows)) < 0.2] = np.nan
        cutoff = pd.Timestamp("2024-12-01") + pd.Timedelta(days=group)
        extra: dict[str, Any] = {NAIVE: naive, HORIZON: 1 + group, CUTOFF: cutoff}
        parts.append(rows.assign(**extra))
    stacked = [
        [p.sort_values([ID, DATE], kind="stable") for p in parts],  # as a backtest stacks them
        parts,  # any order within a group
        parts[:1],
    ]
    for groups in stacked:
        together = pd.concat(groups, ignore_index=True)
        starts = np.cumsum([0, *(len(g) for g in groups)])
        history = frame[[ID, DATE, PRICE]]
        values = statistic.compute_groups(together, history, starts)
        assert len(values) == len(groups), (
            f"{obj.name}: compute_groups returned {len(values)} values for {len(groups)} groups"
        )
        for i, (value, (a, b)) in enumerate(zip(values, pairwise(starts), strict=True)):
            alone = _float(obj, obj.finalize(statistic.compute(together.iloc[a:b], history)))
            grouped = _float(obj, obj.finalize(value))
            assert np.isclose(grouped, alone, rtol=1e-9, atol=1e-12, equal_nan=True), (
                f"{obj.name}: compute_groups gives group {i} the value {grouped}, compute on "
                f"that group's rows {alone}"
            )


def check_policy(policy: type[SignalPolicy] | SignalPolicy) -> None:
    """Check a policy: metadata, parameters, one signal per row drawn from BUY/SELL/HOLD,
    missing exactly where the fair price is NaN, determinism, row-wise (order) behaviour."""
    obj: SignalPolicy = _instance(policy, SignalPolicy)
    _check_params(obj)
    rng = np.random.default_rng(1)
    n = 500
    fair = rng.uniform(0.1, 500, n)
    market = fair * rng.uniform(0.5, 1.5, n)
    fair[rng.random(n) < 0.1] = np.nan
    raw = obj.decide(market, fair)
    values = pd.Series(np.asarray(raw, dtype=object))
    assert len(values) == n, f"{obj.name}: {len(values)} signals for {n} rows"
    missing = values.isna().to_numpy()
    unknown = set(values[~missing]) - set(SIGNALS)
    assert not unknown, f"{obj.name}: signals must be BUY, SELL or HOLD, got {sorted(unknown)}"
    assert (missing == np.isnan(fair)).all(), (
        f"{obj.name}: signal must be missing exactly where fair_price is NaN"
    )
    again = pd.Series(np.asarray(obj.decide(market, fair), dtype=object))
    assert values.equals(again), f"{obj.name}: not deterministic"
    order = rng.permutation(n)
    shuffled = pd.Series(np.asarray(obj.decide(market[order], fair[order]), dtype=object))
    assert shuffled.reset_index(drop=True).equals(values[order].reset_index(drop=True)), (
        f"{obj.name}: a row's signal depends on other rows or their order"
    )
