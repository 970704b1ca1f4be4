"""Sweep plans: every combination of a grid evaluated on one engine (the data read and
validated once), and the ranking. Which combination is best is decided by one metric, in the
direction its own metadata gives (``greater_is_better``)."""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pokewatch_core.engines.base import Engine
from pokewatch_core.errors import ConfigError, PokeWatchError
from pokewatch_core.evaluation.cutoffs import BacktestOptions
from pokewatch_core.evaluation.runner import EvaluationResult
from pokewatch_core.evaluation.spec import EvaluationSpec


@dataclass(frozen=True)
class Trial:
    """One evaluated combination."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    logged_params: dict[str, str] = field(default_factory=dict)  # as a run logs them


@dataclass
class SweepPlan:
    """What a sweep evaluates: the engine (entered: its data read once) and the settings
    shared by every trial."""

    engine: Engine
    model: str
    policy: str
    metrics: list[str] | None
    fixed: dict[str, Any]
    combos: list[dict[str, Any]]
    test_start: str | None
    backtest: BacktestOptions | None = None

    def params(self, number: int) -> dict[str, Any]:
        """The parameters of trial ``number``: the fixed ones, then the combination."""
        return {**self.fixed, **self.combos[number]}

    def spec(self, number: int) -> EvaluationSpec:
        """The evaluation spec of trial ``number``."""
        return EvaluationSpec.build(
            self.model, self.policy, self.metrics, self.params(number), self.test_start,
            self.backtest,
        )  # fmt: skip

    def check(self) -> None:
        """Build every combination's components: a bad value fails before anything runs."""
        for number in range(len(self.combos)):
            self.spec(number)

    def evaluate(self, number: int) -> EvaluationResult:
        """Evaluate trial ``number`` on the engine."""
        return self.engine.evaluate(self.spec(number))

    def release(self, result: EvaluationResult) -> None:
        """Free what evaluating a trial left behind once its metrics are kept (the dask
        engine: the trial's frame folder)."""
        self.engine.release(result)

    def run(self, jobs: int = 1, on_trial: Callable[[Trial], None] | None = None) -> list[Trial]:
        """Evaluate every trial (on ``jobs`` processes, where the engine allows it);
        ``on_trial`` is called with each as it finishes. Returns them in grid order."""
        done: dict[int, Trial] = {}

        def finish(trial: Trial) -> None:
            done[trial.number] = trial
            if on_trial is not None:
                on_trial(trial)

        if jobs > 1 and not self.engine.parallel_trials:
            raise ConfigError(
                f"jobs: the {self.engine.name} engine evaluates one trial at a time (it is "
                "parallel itself)"
            )
        if jobs <= 1 or len(self.combos) <= 1:
            for number in range(len(self.combos)):
                finish(_trial(self, number))
        else:
            for trial in _parallel(self, jobs):
                finish(trial)
        return [done[n] for n in sorted(done)]


def _trial(plan: SweepPlan, number: int) -> Trial:
    result = plan.evaluate(number)
    logged = {k: str(v) for k, v in result.params.items()}
    plan.release(result)
    return Trial(number, plan.params(number), dict(result.metrics), logged)


_PLAN: SweepPlan | None = None  # the plan a forked worker inherited


def _worker_trial(number: int) -> Trial:
    assert _PLAN is not None
    return _trial(_PLAN, number)


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies (Linux)
PARENT_POLL_SECONDS = 0.5


def die_with_parent(parent: int) -> None:
    """Make this process (a sweep worker) end when process ``parent`` does: killed with
    SIGKILL, a worker would otherwise go on with its trial and then wait for work forever,
    holding its copy of the data. On Linux the kernel sends SIGKILL when the parent dies
    (``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread checks every
    ``PARENT_POLL_SECONDS`` that the parent is still ``parent``. A parent already gone ends
    the worker at once."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the thread below still ends the worker
    if os.getppid() != parent:  # the parent died before the kernel was told to watch it
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="pokewatch-parent-watch", daemon=True).start()


def _parallel(plan: SweepPlan, jobs: int) -> Iterator[Trial]:
    """Trials on ``jobs`` forked processes that inherit the validated table (no copy, no
    pickling of the data); only the metrics travel back. The workers end with the sweep's
    process, even when it is killed with SIGKILL (``die_with_parent``)."""
    import multiprocessing

    global _PLAN
    _PLAN = plan
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        pending: set[Future[Trial]] = {
            pool.submit(_worker_trial, n) for n in range(len(plan.combos))
        }
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _PLAN = None


def varying_keys(combos: Sequence[Mapping[str, Any]]) -> list[str]:
    """The parameters whose value differs between combinations, in first-seen order."""
    keys = dict.fromkeys(k for combo in combos for k in combo)
    return [k for k in keys if len({repr(c.get(k)) for c in combos}) > 1]


def ranking_direction(metric: str) -> bool:
    """Whether the best combination has the largest ``metric`` (its ``greater_is_better``);
    a metric with no direction (a count, a signal rate) cannot pick a best."""
    from pokewatch_core.evaluation.horizon_keys import metric_of_key
    from pokewatch_core.plugins.registry import get_plugins

    better = get_plugins().metrics.get(metric_of_key(metric)).greater_is_better
    if better is None:
        raise ConfigError(
            f"metric {metric!r} has no better direction (greater_is_better is None): "
            "rank by an error, a skill or a return"
        )
    return bool(better)


def best_trial(trials: Sequence[Trial], metric: str, greater_is_better: bool | None) -> Trial:
    """The best trial by ``metric`` (NaN never wins; ties: the earlier trial)."""
    scored = [t for t in trials if not math.isnan(t.metrics.get(metric, math.nan))]
    if not scored:
        raise PokeWatchError(f"no combination has a value for {metric!r}: nothing to rank")
    sign = -1.0 if greater_is_better else 1.0
    return min(scored, key=lambda t: (sign * t.metrics[metric], t.number))


def ranking(trials: Sequence[Trial], metric: str, greater_is_better: bool | None) -> pd.DataFrame:
    """One row per trial, best first: rank, trial, the parameters that vary between trials,
    every metric."""
    keys = varying_keys([t.params for t in trials])
    rows = [{"trial": t.number, **{k: t.params.get(k) for k in keys}, **t.metrics} for t in trials]
    table = pd.DataFrame(rows, columns=["trial", *keys, *trials[0].metrics]) if trials else None
    if table is None:
        return pd.DataFrame()
    table = table.sort_values(
        [metric, "trial"], ascending=[not greater_is_better, True], na_position="last"
    )
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


@dataclass
class SweepResult:
    """What ``run_sweep`` returns: every trial, the ranking table, the best trial, and the
    parent run's id when the sweep was logged."""

    trials: list[Trial]
    table: pd.DataFrame
    best: Trial
    parent_run_id: str | None = None
    child_run_ids: dict[int, str] = field(default_factory=dict)
    tracking_uri: str | None = None  # the store the sweep was logged to
