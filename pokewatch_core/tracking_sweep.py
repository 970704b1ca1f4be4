"""MLflow logging of a parameter sweep: one parent run, one nested child run per combination.

Children are logged as their evaluations finish (params and every metric), so an interrupted
sweep leaves the finished ones FINISHED; the parent ends FAILED (KILLED on an interrupt or
signal). Once every combination is done, the best child (by the sweep metric, in its own
direction) gets the plots, summary, tables, dataset and model of a ``pokewatch train`` run
(``log_models="all"``: every child), and the parent gets the grid, the ranking table
``tables/sweep.csv``, a plot of the metric against each swept parameter, the best child's id
and its metrics.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pokewatch_core.interrupts import check_interrupted
from pokewatch_core.sweep import SweepPlan, Trial, best_trial, ranking
from pokewatch_core.tracking import (
    NOTE_TAG,
    _clean_metric,
    _experiment_id,
    _log_run,
    _retry,
    _stop_run,
    _store_init_lock,
    check_reachable,
    resolve_tracking_uri,
    run_owner_tags,
)
from pokewatch_core.version import __version__

SWEEP_TAG = "pokewatch.sweep"
BEST_TAG = "pokewatch.best_run_id"


@dataclass
class SweepOutcome:
    """What a logged sweep produced."""

    parent_run_id: str
    experiment_name: str
    tracking_uri: str
    trials: list[Trial]
    best: Trial
    child_run_ids: dict[int, str] = field(default_factory=dict)
    table: pd.DataFrame | None = None


def _swept(plan: SweepPlan) -> list[str]:
    keys = list(dict.fromkeys(k for combo in plan.combos for k in combo))
    return [k for k in keys if len({repr(c.get(k)) for c in plan.combos}) > 1]


def _sweep_figure(table: pd.DataFrame, metric: str, parameter: str, best: int) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 5), dpi=100)
    axes = figure.add_subplot()
    values = pd.to_numeric(table[parameter], errors="coerce")
    if values.isna().any():  # not numbers: categories in grid order
        labels = list(dict.fromkeys(table.sort_values("trial")[parameter].astype(str)))
        values = table[parameter].astype(str).map({v: i for i, v in enumerate(labels)})
        axes.set_xticks(range(len(labels)), labels)
    axes.scatter(values, table[metric], color="#4c72b0", s=20, label="combinations")
    chosen = table["trial"] == best
    axes.scatter(values[chosen], table.loc[chosen, metric], color="#c44e52", s=60, label="best")
    axes.set(title=f"{metric} by {parameter}", xlabel=parameter, ylabel=metric)
    axes.legend()
    return figure


def log_sweep(
    plan: SweepPlan,
    *,
    metric: str,
    greater_is_better: bool | None,
    jobs: int = 1,
    experiment_name: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    data_source: str = "data",
    tracking_uri: str | None = None,
    log_models: str = "best",
    progress: Callable[[int, int], None] | None = None,
) -> SweepOutcome:
    """Evaluate every combination of ``plan`` and log the sweep (see the module docstring)."""
    import mlflow
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    if uri:
        mlflow.set_tracking_uri(uri)
    effective_uri = mlflow.get_tracking_uri()
    with _store_init_lock(effective_uri):
        experiment_id = _retry(_experiment_id, experiment_name)
    client = MlflowClient()
    total = len(plan.combos)
    swept = _swept(plan)
    owner = run_owner_tags()  # who owns the runs: see heal_abandoned_runs
    parent_tags = {"pokewatch.version": __version__, SWEEP_TAG: "parent", **owner, **(tags or {})}
    parent = _retry(client.create_run, experiment_id, run_name=run_name, tags=parent_tags)
    parent_id = parent.info.run_id
    parent_name = parent.info.run_name
    outcome = SweepOutcome(parent_id, experiment_name, effective_uri, [], Trial(0, {}, {}))
    open_children: set[str] = set()

    def log_child(trial: Trial) -> None:
        child_tags = {
            "mlflow.parentRunId": parent_id,
            SWEEP_TAG: "child",
            "pokewatch.version": __version__,
            **owner,
            **(tags or {}),
        }
        child = _retry(
            client.create_run,
            experiment_id,
            run_name=f"{parent_name}-{trial.number}",
            tags=child_tags,
        )
        child_id = child.info.run_id
        open_children.add(child_id)
        stamp = int(time.time() * 1000)
        params = trial.logged_params
        _retry(
            client.log_batch,
            child_id,
            metrics=[MlflowMetric(k, _clean_metric(v), stamp, 0) for k, v in trial.metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag("pokewatch.trial", str(trial.number))],
        )
        check_interrupted()  # a signal Python dropped must not finish the child
        _retry(client.set_terminated, child_id, "FINISHED")
        open_children.discard(child_id)
        outcome.child_run_ids[trial.number] = child_id
        if progress is not None:
            progress(len(outcome.child_run_ids), total)

    try:
        grid = {k: list(dict.fromkeys(str(c.get(k)) for c in plan.combos)) for k in swept}
        _retry(
            client.log_batch,
            parent_id,
            params=[
                Param("model_type", plan.model),
                Param("policy", plan.policy),
                Param("sweep_metric", metric),
                Param("combinations", str(total)),
                Param("grid", json.dumps(grid)[:6000]),
                *(Param(k, str(v)) for k, v in plan.fixed.items()),
            ],
        )
        outcome.trials = plan.run(jobs, on_trial=log_child)
        best = best_trial(outcome.trials, metric, greater_is_better)
        outcome.best = best
        table = ranking(outcome.trials, metric, greater_is_better)
        table.insert(2, "run_id", table["trial"].map(outcome.child_run_ids))
        outcome.table = table
        chosen = outcome.trials if log_models == "all" else [best]
        for trial in chosen:
            _log_full_child(plan, trial, outcome.child_run_ids[trial.number], data_source)
        with tempfile.TemporaryDirectory(prefix="pokewatch-") as tmp:
            path = Path(tmp) / "sweep.csv"
            table.to_csv(path, index=False)
            _retry(client.log_artifact, parent_id, str(path), "tables")
        for parameter in swept:
            figure = _sweep_figure(table, metric, parameter, best.number)
            _retry(client.log_figure, parent_id, figure, f"plots/sweep_{parameter}.png")
        stamp = int(time.time() * 1000)
        _retry(
            client.log_batch,
            parent_id,
            metrics=[MlflowMetric(k, _clean_metric(v), stamp, 0) for k, v in best.metrics.items()],
            tags=[
                RunTag(BEST_TAG, outcome.child_run_ids[best.number]),
                RunTag(
                    NOTE_TAG,
                    f"Sweep of {plan.model} with policy {plan.policy} over "
                    f"{', '.join(swept) or 'one combination'} ({total} combinations); best by "
                    f"{metric}: trial {best.number} ({metric} {best.metrics.get(metric)})",
                ),
            ],
        )
        check_interrupted()
        _retry(client.set_terminated, parent_id, "FINISHED")
    except BaseException as exc:
        status = "FAILED" if isinstance(exc, Exception) else "KILLED"
        for child_id in open_children:
            _end_quietly(client, child_id, status)
        _end_quietly(client, parent_id, status)
        raise
    return outcome


def _end_quietly(client: Any, run_id: str, status: str) -> None:
    try:
        _retry(client.set_terminated, run_id, status, interruptible=False)
    except Exception as exc:  # the store may be what failed; the message says so
        print(f"pokewatch: could not mark run {run_id} {status}: {exc}", file=sys.stderr)


def _log_full_child(plan: SweepPlan, trial: Trial, run_id: str, data_source: str) -> None:
    """Give a finished child run the artifacts and the model of a ``pokewatch train`` run."""
    import mlflow

    result = plan.evaluate(trial.number)
    run = _retry(mlflow.start_run, run_id=run_id)
    stage = ["params"]
    try:
        with tempfile.TemporaryDirectory(prefix="pokewatch-") as tmp:
            _log_run(result, run, Path(tmp), data_source, None, "champion", True, None, stage)
        check_interrupted()
    except BaseException as exc:
        killed = isinstance(exc, KeyboardInterrupt)
        _stop_run(run_id, "KILLED" if killed else "FAILED", stage[0])
        raise
    _retry(mlflow.end_run)
