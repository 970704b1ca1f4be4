"""The library's sweep (``run_sweep``) and its MLflow logging (``log_sweep``): one parent run,
one nested child run per combination. ``run_sweep`` lives here, above the evaluation layer's
``pokewatch_core.sweeps.plan`` (grids, plans, ranking), because it may log.

Every combination is evaluated first; then the children are logged one after the other, each
whole and FINISHED before the next: params, every metric and the dataset, and for the best
child (by the sweep metric, in its own direction; ``log_models="all"``: every child) also the
plots, summary, tables and model of a ``pokewatch train`` run. The parent gets the grid, the
ranking table ``tables/sweep.csv``, a plot of the metric against each swept parameter, the best
child's id and its metrics. An interruption leaves the finished children FINISHED and the
parent KILLED (FAILED on an error), tagged with the stage.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pokewatch_core.defaults import DEFAULT_EXPERIMENT, DEFAULT_POLICY, DEFAULT_SWEEP_METRIC
from pokewatch_core.errors import ConfigError
from pokewatch_core.interrupts import check_interrupted
from pokewatch_core.sweeps.plan import (
    SweepPlan,
    SweepResult,
    Trial,
    best_trial,
    check_grid,
    combinations,
    ranking,
    ranking_direction,
    varying_keys,
)
from pokewatch_core.tracking.log import (
    _log_run,
    _stop_run,
    make_dataset,
    metric_entities,
    plugin_versions,
)
from pokewatch_core.tracking.store import (
    NOTE_TAG,
    Store,
    ensure_experiment,
    retry,
    run_owner_tags,
    store_init_lock,
    use_store,
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
    tracking_uri: str | Store | None = None,
    log_models: str = "best",
    progress: Callable[[str, int, int], None] | None = None,
) -> SweepOutcome:
    """Evaluate every combination of ``plan`` and log the sweep (see the module docstring).

    Every combination is evaluated first (fast, in memory); then each child run is logged
    whole — the best (or, with ``log_models="all"``, every) child with the artifacts and the
    model — and ended FINISHED before the next starts, so an interruption leaves only whole,
    finished children behind."""
    from mlflow.entities import DatasetInput, InputTag, Param, RunTag
    from mlflow.tracking import MlflowClient
    from mlflow.tracking.context import registry as context_registry
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    effective_uri = use_store(tracking_uri)
    with store_init_lock(effective_uri):
        experiment_id = retry(ensure_experiment, experiment_name)
    client = MlflowClient()
    total = len(plan.combos)
    swept = varying_keys(plan.combos)
    # the tags a `pokewatch train` run gets: user, source, version, owner (see heal_abandoned_runs)
    base = context_registry.resolve_tags(
        {"pokewatch.version": __version__, **run_owner_tags(), **(tags or {})}
    )
    parent = retry(
        client.create_run, experiment_id, run_name=run_name, tags={**base, SWEEP_TAG: "parent"}
    )
    parent_id = parent.info.run_id
    outcome = SweepOutcome(parent_id, experiment_name, effective_uri, [], Trial(0, {}, {}))
    open_children: set[str] = set()
    stage = ["params"]

    def child_tags(trial: Trial, extra: dict[str, str]) -> dict[str, str]:
        return {
            **base,
            **extra,
            "mlflow.parentRunId": parent_id,
            SWEEP_TAG: "child",
            "pokewatch.trial": str(trial.number),
        }

    try:
        grid = {k: list(dict.fromkeys(str(c.get(k)) for c in plan.combos)) for k in swept}
        retry(
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
        stage[0] = "evaluate"
        trials = _evaluate_all(plan, jobs, progress)
        outcome.trials = trials
        stage[0] = "select"
        best = best_trial(trials, metric, greater_is_better)
        outcome.best = best
        best_result = plan.evaluate(best.number)
        plugins = {f"pokewatch.plugin.{d}": v for d, v in plugin_versions(best_result).items()}
        dataset = DatasetInput(
            dataset=make_dataset(best_result, data_source)._to_mlflow_entity(),
            tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value="evaluation")],
        )
        stage[0] = "children"
        for done, trial in enumerate(trials, start=1):
            name = f"{parent.info.run_name}-{trial.number}"
            if log_models == "all" or trial.number == best.number:
                result = best_result if trial.number == best.number else None
                child_id = _log_full_child(
                    plan,
                    trial,
                    result,
                    experiment_id,
                    name,
                    child_tags(trial, plugins),
                    data_source,
                )
            else:
                child = retry(
                    client.create_run,
                    experiment_id,
                    run_name=name,
                    tags=child_tags(trial, plugins),
                )
                child_id = child.info.run_id
                open_children.add(child_id)
                retry(
                    client.log_batch,
                    child_id,
                    metrics=metric_entities(trial.metrics),
                    params=[Param(k, v) for k, v in trial.logged_params.items()],
                )
                retry(client.log_inputs, child_id, datasets=[dataset])
                check_interrupted()  # a signal Python dropped must not finish the child
                retry(client.set_terminated, child_id, "FINISHED")
                open_children.discard(child_id)
            outcome.child_run_ids[trial.number] = child_id
            if progress is not None:
                progress("logged", done, total)
        stage[0] = "parent"
        table = ranking(trials, metric, greater_is_better)
        table.insert(2, "run_id", table["trial"].map(outcome.child_run_ids))
        outcome.table = table
        with tempfile.TemporaryDirectory(prefix="pokewatch-") as tmp:
            path = Path(tmp) / "sweep.csv"
            table.to_csv(path, index=False)
            retry(client.log_artifact, parent_id, str(path), "tables")
        for parameter in swept:
            figure = _sweep_figure(table, metric, parameter, best.number)
            retry(client.log_figure, parent_id, figure, f"plots/sweep_{parameter}.png")
        retry(
            client.log_batch,
            parent_id,
            metrics=metric_entities(best.metrics),
            tags=[
                RunTag(BEST_TAG, outcome.child_run_ids[best.number]),
                *(RunTag(k, v) for k, v in plugins.items()),
                RunTag(
                    NOTE_TAG,
                    f"Sweep of {plan.model} with policy {plan.policy} over "
                    f"{', '.join(swept) or 'one combination'} ({total} combinations); best by "
                    f"{metric}: trial {best.number} ({metric} {best.metrics.get(metric)})",
                ),
            ],
        )
        stage[0] = "end"
        check_interrupted()
        retry(client.set_terminated, parent_id, "FINISHED")
    except BaseException as exc:
        status = "FAILED" if isinstance(exc, Exception) else "KILLED"
        for child_id in open_children:
            _stop_run(child_id, status, stage[0])
        _stop_run(parent_id, status, stage[0])
        raise
    return outcome


def _evaluate_all(
    plan: SweepPlan, jobs: int, progress: Callable[[str, int, int], None] | None
) -> list[Trial]:
    count = [0]

    def evaluated(_: Trial) -> None:
        count[0] += 1
        if progress is not None:
            progress("evaluated", count[0], len(plan.combos))

    return plan.run(jobs, on_trial=evaluated)


def _log_full_child(
    plan: SweepPlan,
    trial: Trial,
    result: Any,
    experiment_id: str,
    name: str,
    tags: dict[str, str],
    data_source: str,
) -> str:
    """Log one child run as ``pokewatch train`` logs a run (params, metrics linked to the
    model, dataset, artifacts, model), FINISHED when complete; returns its id."""
    import mlflow
    from mlflow.tracking import MlflowClient

    result = result if result is not None else plan.evaluate(trial.number)
    run = retry(mlflow.start_run, experiment_id=experiment_id, run_name=name, tags=tags)
    run_id = str(run.info.run_id)
    stage = ["params"]
    try:
        with tempfile.TemporaryDirectory(prefix="pokewatch-") as tmp:
            _log_run(result, run, Path(tmp), data_source, None, "champion", True, None, stage)
        stage[0] = "end"
        check_interrupted()
        retry(MlflowClient().set_terminated, run_id, "FINISHED")
    except BaseException as exc:
        _stop_run(run_id, "FAILED" if isinstance(exc, Exception) else "KILLED", stage[0])
        raise
    with contextlib.suppress(Exception):  # recorded: this only pops MLflow's active run
        mlflow.end_run()
    return run_id


def run_sweep(
    model: str,
    data: pd.DataFrame | str | Path,
    grid: Mapping[str, Sequence[Any]],
    policy: str = DEFAULT_POLICY,
    metrics: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    test_start: str | None = None,
    *,
    metric: str = DEFAULT_SWEEP_METRIC,
    jobs: int = 1,
    log: bool = False,
    **log_options: Any,
) -> SweepResult:
    """Evaluate every combination of ``grid`` (name -> values) on ``data``, validated once.

    ``params`` are fixed for every combination; ``metric`` picks the best in its own direction.
    With ``log=True`` the sweep is logged as ``pokewatch sweep`` logs it (``log_options``:
    ``experiment_name``, ``run_name``, ``tags``, ``tracking_uri``, ``log_models``)."""
    from pokewatch_core.data.tables import load_prices, prepare_prices
    from pokewatch_core.plugins.registry import get_plugins

    table = load_prices(data) if isinstance(data, str | Path) else prepare_prices(data)
    names = list(metrics) if metrics is not None else None
    if metric not in (names if names is not None else get_plugins().metrics.names()):
        raise ConfigError(f"metric {metric!r} is not computed by this sweep")
    greater = ranking_direction(metric)
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    plan = SweepPlan(
        table, model, policy, names, dict(params or {}), combinations(check_grid(grid)), test_start
    )
    plan.check()
    if log:
        options = {"experiment_name": DEFAULT_EXPERIMENT, **log_options}
        outcome = log_sweep(plan, metric=metric, greater_is_better=greater, jobs=jobs, **options)
        assert outcome.table is not None
        return SweepResult(
            outcome.trials,
            outcome.table,
            outcome.best,
            outcome.parent_run_id,
            outcome.child_run_ids,
        )
    trials = plan.run(jobs)
    return SweepResult(
        trials, ranking(trials, metric, greater), best_trial(trials, metric, greater)
    )
