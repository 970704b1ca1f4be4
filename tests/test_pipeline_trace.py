"""The trace of `pokewatch train`: each stage of the pipe (docs/architecture.md) runs once, in
order — resolve, check the store, validate, fit, predict, decide, score, analyse, log — and
logging computes nothing the evaluation already holds."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from pokewatch_core import get_plugins
from pokewatch_core.analysis.by_card import ByCard
from pokewatch_core.analysis.overview import Overview
from pokewatch_core.analysis.quality import Quality
from pokewatch_core.analysis.strategy import Strategy
from pokewatch_core.data import tables as data
from pokewatch_core.evaluation import runner
from pokewatch_core.plugins import resolve
from pokewatch_core.tracking import log as tracking_log
from pokewatch_core.tracking import store as tracking_store
from pokewatch_plugins.baseline import BaselineMovingAverage
from pokewatch_plugins.threshold import ThresholdPolicy
from tests.conftest import all_runs, make_panel


@pytest.fixture
def trace(monkeypatch):
    """The stages called, in order (the real functions still run); a call made while logging
    is marked ``log:``."""
    seen: list[str] = []
    logging = []

    def spy(owner, name, label):
        real = getattr(owner, name)

        @functools.wraps(real)
        def called(*args, **kwargs):
            seen.append(f"log: {label}" if logging else label)
            if label == "log":
                logging.append(True)
            try:
                return real(*args, **kwargs)
            finally:
                if label == "log":
                    logging.pop()

        monkeypatch.setattr(owner, name, called)

    spy(resolve, "resolve_components", "resolve")
    spy(tracking_store, "check_reachable", "check store")
    spy(data, "prepare_prices", "validate")
    # the runner's fit (replacing the model's own would make it a model that learns, which
    # the runner refits at every cutoff)
    spy(runner, "fitted", "fit")
    spy(BaselineMovingAverage, "predict", "predict")
    spy(ThresholdPolicy, "decide", "decide")
    spy(Quality, "compute", "signal quality")
    spy(Strategy, "compute", "strategy")
    spy(ByCard, "compute", "per-card table")
    spy(Overview, "compute", "overview")
    spy(tracking_log, "log_evaluation", "log")
    return seen


@pytest.mark.parametrize("test_start", [None, "2024-01-20"])
def test_train_visits_each_stage_once_in_order(run_cli, store, trace, tmp_path, test_start):
    path = tmp_path / "prices.parquet"
    make_panel(cards=6, days=40, seed=4).to_parquet(path)
    args = ["train", "--data-path", str(path), "--tracking-uri", store]
    if test_start:
        args += ["--test-start", test_start]
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert trace == [
        "resolve",
        "check store",
        "validate",
        "fit",
        "predict",
        "decide",
        "signal quality",  # shared by the eight signal-quality metrics
        "strategy",  # shared by the four strategy metrics
        "overview",  # the analyses reuse the metrics' equal statistics, adding only these two
        "per-card table",
        "log",
        # MLflow tries the logged model on its input example (a few cards): that is the
        # served model's first request, not the evaluation again
        "log: predict",
        "log: decide",
    ]
    (run,) = all_runs(store)
    assert run.info.status == "FINISHED"
    assert set(run.data.metrics) == set(get_plugins().metrics.names())


def test_analyses_without_signal_metrics_are_computed_once_on_first_use(trace):
    from pokewatch_core import evaluate

    result = evaluate("baseline_moving_average", make_panel(cards=3, days=20), metrics=["rmse"])
    assert "signal quality" not in trace  # nothing asked for it yet
    first = result.analyses
    assert result.analyses is first
    assert trace.count("signal quality") == 1 and trace.count("strategy") == 1
    assert not first.reports_signals
    assert isinstance(first.by_card, pd.DataFrame)


@pytest.fixture
def front_door(monkeypatch):
    """The library calls `pokewatch train` and `pokewatch sweep` make, in order: the
    command line goes through the front door (a spec, an engine, its evaluate), not around
    it."""
    from pokewatch_core.engines.front_door import EngineOptions
    from pokewatch_core.engines.local import LocalEngine
    from pokewatch_core.evaluation.spec import EvaluationSpec
    from pokewatch_core.tracking import sweep as tracking_sweep

    seen: list[str] = []

    def spy(owner, name, label, wrap=lambda f: f):
        real = getattr(owner, name)

        @functools.wraps(real)
        def called(*args, **kwargs):
            seen.append(label)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrap(called))

    real_build = EvaluationSpec.build

    def build(cls, *args, **kwargs):
        seen.append("spec")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(EvaluationSpec, "build", classmethod(build))
    spy(EngineOptions, "engine_for", "engine")
    spy(LocalEngine, "open", "open")
    spy(LocalEngine, "evaluate", "evaluate")
    spy(LocalEngine, "close", "close")
    spy(tracking_log, "log_evaluation", "log")
    spy(tracking_sweep, "run_sweep", "run_sweep")
    spy(tracking_sweep, "log_sweep", "log sweep")
    return seen


def test_train_is_a_spec_an_engine_and_one_evaluate(run_cli, store, front_door, tmp_path):
    path = tmp_path / "prices.parquet"
    make_panel(cards=5, days=30, seed=2).to_parquet(path)
    result = run_cli("train", "--data-path", str(path), "--tracking-uri", store)
    assert result.exit_code == 0, result.stderr
    assert front_door == ["engine", "spec", "open", "evaluate", "log", "close"]


def test_sweep_is_run_sweep_on_one_engine(run_cli, store, front_door, tmp_path):
    path = tmp_path / "prices.parquet"
    make_panel(cards=5, days=30, seed=2).to_parquet(path)
    args = ["sweep", "--data-path", str(path), "--tracking-uri", store, "-p", "window_size=2,3"]
    result = run_cli(*args, "--metric", "rmse")
    assert result.exit_code == 0, result.stderr
    # every combination is built and the data read first (bad values and bad data stop
    # before any run), then one engine evaluates them, then the best again for its full
    # child run
    assert front_door == [
        "run_sweep",
        "engine",
        "spec",
        "spec",
        "open",
        "log sweep",
        "spec",
        "evaluate",
        "spec",
        "evaluate",
        "spec",
        "evaluate",
        "close",
    ]
