"""The library's sweep (``run_sweep``) and its MLflow logging (``log_sweep``): one parent run,
one nested child run per combination. ``run_sweep`` lives here, above the evaluation layer's
``pokewatch_core.sweeps`` (grids, plans, ranking), because it may log.

Every combination is evaluated first, before any run exists (an error or an interruption
there logs nothing); then the parent run is created and the children are logged one after
the other, each whole and FINISHED before the next: params, every metric and the dataset, and
for the best child (by the sweep metric, in its own direction; ``log_models="all"``: every
child) also the plots, summary, tables and model of a ``pokewatch train`` run. The parent gets
the grid, the ranking table ``tables/sweep.csv``, a plot of the metric against each swept
parameter, the best child's id and its metrics. An interruption then leaves the finished
children FINISHED and the parent KILLED (FAILED on an error), tagged with the stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pokewatch_core.defaults import DEFAULT_EXPERIMENT, DEFAULT_POLICY, DEFAULT_SWEEP_METRIC
from pokewatch_core.engines.front_door import EngineOptions
from pokewatch_core.errors import ConfigError
from pokewatch_core.evaluation.cutoffs import BacktestOptions
from pokewatch_core.evaluation.horizon_keys import check_horizon_key, metric_of_key
from pokewatch_core.evaluation.spec import parse_test_start
from pokewatch_core.files import temporary_directory, write_report_csv
from pokewatch_core.sweeps.grid import check_grid, combinations
from pokewatch_core.sweeps.plan import (
    SweepPlan,
    SweepResult,
    Trial,
    best_trial,
    ranking,
    ranking_direction,
    varying_keys,
)
from pokewatch_core.tracking.lifecycle import RunLifecycle, run_lifecycle
from pokewatch_core.tracking.log import (
    log_run_contents,
    make_dataset,
    metric_entities,
    plugin_versions,
)
from pokewatch_core.tracking.store import (
    NOTE_TAG,
    Store,
    check_run_name,
    check_user_tags,
    ensure_experiment,
    retry,
    run_owner_tags,
    store_init_lock,
    use_store,
)
from pokewatch_core.version import __version__

if TYPE_CHECKING:
    from pokewatch_core.evaluation.runner import EvaluationResult

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

    Every combination is evaluated first, before any run exists (bad data, on any engine, is
    refused with nothing logged); then the parent run, and each child run logged whole — the
    best (or, with ``log_models="all"``, every) child with the artifacts and the model — and
    ended FINISHED before the next starts, so an interruption leaves only whole, finished
    children behind."""
    check_user_tags(tags)
    check_run_name(run_name)
    effective_uri = use_store(tracking_uri)
    _refuse_an_active_run()
    trials = _evaluate_all(plan, jobs, progress)
    best = best_trial(trials, metric, greater_is_better)
    parent = _start_parent(effective_uri, experiment_name, run_name, tags)
    outcome = SweepOutcome(parent.run_id, experiment_name, effective_uri, trials, best)
    with run_lifecycle(parent.run_id) as sweep:
        _log_grid(plan, parent.run_id, metric)
        sweep.stage = "select"
        children = _children_of(parent, plan, outcome.best, data_source, sweep)
        sweep.stage = "children"
        _log_children(children, outcome, log_models, progress)
        sweep.stage = "parent"
        outcome.table = _log_ranking(outcome, parent.run_id, metric, greater_is_better)
        _log_plots(plan, outcome, parent.run_id, metric)
        _log_best(plan, outcome, parent.run_id, metric, children.plugin_tags)
    return outcome


def _refuse_an_active_run() -> None:
    """A sweep logs its own parent and children: refuse to start inside an active MLflow run
    of this process (its children would clash with it), before any work."""
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        raise ConfigError(
            f"an MLflow run is active in this process ({active.info.run_id}): a logged sweep "
            "starts its own runs; end it first (mlflow.end_run())"
        )


@dataclass(frozen=True)
class _Parent:
    """A sweep's parent run: its id, name, experiment and the tags its children share."""

    run_id: str
    run_name: str
    experiment_id: str
    tags: dict[str, str]


def _start_parent(
    uri: str, experiment_name: str, run_name: str | None, tags: dict[str, str] | None
) -> _Parent:
    """Create the parent run in experiment ``experiment_name`` of store ``uri`` (created if
    missing), with the tags a ``pokewatch train`` run gets: user, source, version, ``tags``
    and its owner (see heal_abandoned_runs)."""
    from mlflow.tracking import MlflowClient
    from mlflow.tracking.context import registry as context_registry

    with store_init_lock(uri):
        experiment_id = retry(ensure_experiment, experiment_name)
    base = context_registry.resolve_tags(
        {"pokewatch.version": __version__, **run_owner_tags(), **(tags or {})}
    )
    run = retry(
        MlflowClient().create_run,
        experiment_id,
        run_name=run_name,
        tags={**base, SWEEP_TAG: "parent"},
    )
    return _Parent(run.info.run_id, run.info.run_name, experiment_id, base)


def _log_grid(plan: SweepPlan, parent_id: str, metric: str) -> None:
    """The parent's params: model, policy, sweep metric, the grid and the fixed params."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    grid = {
        k: list(dict.fromkeys(str(c.get(k)) for c in plan.combos))
        for k in varying_keys(plan.combos)
    }
    retry(
        MlflowClient().log_batch,
        parent_id,
        params=[
            Param("model_type", plan.model),
            Param("policy", plan.policy),
            Param("sweep_metric", metric),
            Param("combinations", str(len(plan.combos))),
            Param("grid", json.dumps(grid)[:6000]),
            *(Param(k, str(v)) for k, v in plan.fixed.items()),
        ],
    )


def _evaluate_all(
    plan: SweepPlan, jobs: int, progress: Callable[[str, int, int], None] | None
) -> list[Trial]:
    count = [0]

    def evaluated(_: Trial) -> None:
        count[0] += 1
        if progress is not None:
            progress("evaluated", count[0], len(plan.combos))

    return plan.run(jobs, on_trial=evaluated)


@dataclass(frozen=True)
class _Children:
    """What the child runs of a sweep share: the plan, the parent, the best trial and its
    evaluation, the plugin tags, the evaluated table as a dataset input, the parent's
    lifecycle (which ends the children it leaves open)."""

    plan: SweepPlan
    parent: _Parent
    best: Trial
    best_result: EvaluationResult
    plugin_tags: dict[str, str]
    dataset: Any
    data_source: str
    sweep: RunLifecycle

    def tags(self, trial: Trial) -> dict[str, str]:
        """The tags of ``trial``'s child run."""
        return {
            **self.parent.tags,
            **self.plugin_tags,
            "mlflow.parentRunId": self.parent.run_id,
            SWEEP_TAG: "child",
            "pokewatch.trial": str(trial.number),
        }

    def name(self, trial: Trial) -> str:
        """The name of ``trial``'s child run."""
        return f"{self.parent.run_name}-{trial.number}"


def _children_of(
    parent: _Parent, plan: SweepPlan, best: Trial, data_source: str, sweep: RunLifecycle
) -> _Children:
    """Evaluate the best trial again (for its tables and model) and make what its children
    share."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    best_result = plan.evaluate(best.number)
    plugins = {f"pokewatch.plugin.{d}": v for d, v in plugin_versions(best_result).items()}
    dataset = DatasetInput(
        dataset=make_dataset(best_result, data_source)._to_mlflow_entity(),
        tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value="evaluation")],
    )
    return _Children(plan, parent, best, best_result, plugins, dataset, data_source, sweep)


def _log_children(
    children: _Children,
    outcome: SweepOutcome,
    log_models: str,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    """Log one child run per trial, each whole and FINISHED before the next: the best (with
    ``log_models="all"``: every) one as a ``pokewatch train`` run, the others light."""
    for done, trial in enumerate(outcome.trials, start=1):
        if log_models == "all" or trial.number == children.best.number:
            child_id = _log_full_child(children, trial)
        else:
            child_id = _log_light_child(children, trial)
        outcome.child_run_ids[trial.number] = child_id
        if progress is not None:
            progress("logged", done, len(children.plan.combos))


def _log_light_child(children: _Children, trial: Trial) -> str:
    """Log one child run with the trial's params and metrics and the dataset, FINISHED when
    complete; returns its id."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    child = retry(
        client.create_run,
        children.parent.experiment_id,
        run_name=children.name(trial),
        tags=children.tags(trial),
    )
    child_id = str(child.info.run_id)
    with children.sweep.child(child_id) as lifecycle:
        retry(
            client.log_batch,
            child_id,
            metrics=metric_entities(trial.metrics),
            params=[Param(k, v) for k, v in trial.logged_params.items()],
        )
        lifecycle.stage = "dataset"
        retry(client.log_inputs, child_id, datasets=[children.dataset])
    return child_id


def _log_full_child(children: _Children, trial: Trial) -> str:
    """Log one child run as ``pokewatch train`` logs a run (params, metrics linked to the
    model, dataset, artifacts, model), FINISHED when complete; returns its id."""
    import mlflow

    best = trial.number == children.best.number
    result = children.best_result if best else children.plan.evaluate(trial.number)
    run = retry(
        mlflow.start_run,
        experiment_id=children.parent.experiment_id,
        run_name=children.name(trial),
        tags=children.tags(trial),
    )
    run_id = str(run.info.run_id)
    with (
        children.sweep.child(run_id) as lifecycle,
        temporary_directory("run") as tmp,
    ):
        log_run_contents(result, run, Path(tmp), children.data_source, lifecycle)
    return run_id


def _log_ranking(
    outcome: SweepOutcome, parent_id: str, metric: str, greater_is_better: bool | None
) -> pd.DataFrame:
    """The ranking of the trials, with their child run ids, as the parent's
    ``tables/sweep.csv``; returns it."""
    from mlflow.tracking import MlflowClient

    table = ranking(outcome.trials, metric, greater_is_better)
    table.insert(2, "run_id", table["trial"].map(outcome.child_run_ids))
    with temporary_directory("sweep") as tmp:
        path = Path(tmp) / "sweep.csv"
        write_report_csv(table, path)
        retry(MlflowClient().log_artifact, parent_id, str(path), "tables")
    return table


def _log_plots(plan: SweepPlan, outcome: SweepOutcome, parent_id: str, metric: str) -> None:
    """A plot of the metric against each swept parameter, the best trial marked."""
    from mlflow.tracking import MlflowClient

    assert outcome.table is not None
    client = MlflowClient()
    for parameter in varying_keys(plan.combos):
        figure = _sweep_figure(outcome.table, metric, parameter, outcome.best.number)
        retry(client.log_figure, parent_id, figure, f"plots/sweep_{parameter}.png")


def _log_best(
    plan: SweepPlan,
    outcome: SweepOutcome,
    parent_id: str,
    metric: str,
    plugin_tags: dict[str, str],
) -> None:
    """The best child's metrics and id on the parent, with the plugin tags and a
    description."""
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    best = outcome.best
    swept = varying_keys(plan.combos)
    note = (
        f"Sweep of {plan.model} with policy {plan.policy} over "
        f"{', '.join(swept) or 'one combination'} ({len(plan.combos)} combinations); best by "
        f"{metric}: trial {best.number} ({metric} {best.metrics.get(metric)})"
    )
    retry(
        MlflowClient().log_batch,
        parent_id,
        metrics=metric_entities(best.metrics),
        tags=[
            RunTag(BEST_TAG, outcome.child_run_ids[best.number]),
            *(RunTag(k, v) for k, v in plugin_tags.items()),
            RunTag(NOTE_TAG, note),
        ],
    )


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
    engine: str | EngineOptions = "local",
    scheduler: str | None = None,
    partitions: int | None = None,
    frame_dir: str | Path | None = None,
    log: bool = False,
    backtest: BacktestOptions | None = None,
    horizon: int = 1,
    windows: int | None = None,
    step: int | None = None,
    refit: bool | int | str | None = None,
    input_size: int | None = None,
    **log_options: Any,
) -> SweepResult:
    """Evaluate every combination of ``grid`` (name -> values) on ``data``, read once.

    ``params`` are fixed for every combination; ``metric`` picks the best in its own
    direction. ``engine``, ``scheduler``, ``partitions``, ``frame_dir`` choose where the
    combinations run, as for ``evaluate()`` (``engine="dask"``: one cluster for the whole
    sweep, each trial's frame removed once scored; or an ``EngineOptions``). ``jobs``
    evaluates combinations in parallel processes (local engine). With ``log=True`` the sweep
    is logged as ``pokewatch sweep`` logs it (``log_options``: ``experiment_name``,
    ``run_name``, ``tags``, ``tracking_uri``, ``log_models``, ``data_source``, ``progress``).

    Everything is checked before the data is read: the metric, ``jobs``, the engine options
    and every combination's components."""
    from pokewatch_core.plugins.registry import get_plugins

    options = (
        engine
        if isinstance(engine, EngineOptions)
        else EngineOptions(engine, scheduler, partitions, frame_dir)
    )
    names = list(metrics) if metrics is not None else None
    from pokewatch_core.engines.front_door import backtest_options

    given = backtest_options(horizon, windows, step, refit, input_size)
    if backtest is not None and not given.is_default:
        raise ConfigError("give the backtest as backtest=BacktestOptions(...) or as keywords")
    backtest = backtest or (None if given.is_default else given)
    options_of_backtest = backtest or BacktestOptions()
    options_of_backtest.check(parse_test_start(test_start))
    check_horizon_key(metric, options_of_backtest.horizon, "metric")
    if metric_of_key(metric) not in (names if names is not None else get_plugins().metrics.names()):
        raise ConfigError(f"metric {metric!r} is not computed by this sweep")
    greater = ranking_direction(metric)
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    settings = {"experiment_name": DEFAULT_EXPERIMENT, **log_options}
    if log:
        _check_log_options(settings)
    chosen = options.engine_for(data, jobs=jobs)
    combos = combinations(check_grid(grid))
    with chosen:
        plan = SweepPlan(
            chosen, model, policy, names, dict(params or {}), combos, test_start, backtest
        )
        plan.check()  # every combination builds: a bad value stops here, before any run
        chosen.open()  # the data is read before any evaluation
        if not log:
            trials = plan.run(jobs)
            return SweepResult(
                trials, ranking(trials, metric, greater), best_trial(trials, metric, greater)
            )
        # every trial is evaluated before the parent run exists: bad data logs nothing
        outcome = log_sweep(plan, metric=metric, greater_is_better=greater, jobs=jobs, **settings)
    assert outcome.table is not None
    return SweepResult(
        outcome.trials,
        outcome.table,
        outcome.best,
        outcome.parent_run_id,
        outcome.child_run_ids,
        outcome.tracking_uri,
    )


LOG_OPTIONS = ("experiment_name", "run_name", "tags", "data_source", "tracking_uri",
               "log_models", "progress")  # fmt: skip


def _check_log_options(settings: Mapping[str, Any]) -> None:
    """Refuse, before any work, what ``log_sweep`` would refuse after the evaluations."""
    from pokewatch_core.tracking.store import check_run_options

    unknown = sorted(set(settings) - set(LOG_OPTIONS))
    if unknown:
        raise ConfigError(
            f"run_sweep: unknown logging option {unknown[0]!r} (valid: {', '.join(LOG_OPTIONS)})"
        )
    if settings.get("log_models", "best") not in ("best", "all"):
        raise ConfigError(f"log_models must be 'best' or 'all', got {settings['log_models']!r}")
    uri = settings.get("tracking_uri")
    if not isinstance(uri, Store):  # a Store was checked already
        check_run_options(str(settings["experiment_name"]), uri, None, "champion")
