"""``pokewatch train`` and ``pokewatch sweep``: short sequences of calls into the library's
front door (an ``EvaluationSpec``, an engine from ``EngineOptions``, ``log_evaluation``;
``run_sweep``)."""

from __future__ import annotations

import logging
import shlex
import sys
from typing import TYPE_CHECKING, Any

import click

from pokewatch_core.cli.app import cli
from pokewatch_core.cli.options import (
    backtest_from,
    backtest_option_set,
    column_options,
    data_path_option,
    echo,
    engine_options,
    example,
    experiment_option,
    model_option,
    pairs,
    policy_option,
    report_healed,
    runner_prefix,
    tag_option,
    test_start_option,
    tracking_uri_option,
)
from pokewatch_core.defaults import (
    DEFAULT_EXPERIMENT,
    DEFAULT_SWEEP_METRIC,
)
from pokewatch_core.errors import ConfigError
from pokewatch_core.terminal import printable

if TYPE_CHECKING:
    from pokewatch_core.engines.front_door import EngineOptions


@cli.command(
    epilog=example("pokewatch train --data-path prices.parquet -p window_size=5 --run-name ma5")
)
@model_option
@data_path_option
@experiment_option(
    f"MLflow experiment, created if missing. Default: {DEFAULT_EXPERIMENT}; under `mlflow run`, "
    "the experiment given to mlflow run.",
    default=None,
)
@click.option("--run-name", "--run_name", "run_name", default=None, help="MLflow run name.")
@policy_option
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Component parameter, e.g. -p window_size=5 (or policy.buy_threshold_pct=0.2).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="Metric to compute (repeatable). Default: every installed metric.",
)
@test_start_option
@backtest_option_set
@tag_option
@tracking_uri_option
@click.option(
    "--register-model",
    default=None,
    metavar="NAME",
    help="Register the logged model under NAME and point an alias at it.",
)
@click.option(
    "--alias",
    default="champion",
    show_default=True,
    help="Registry alias set with --register-model.",
)
@column_options
@engine_options
def train(
    model: str,
    data_path: str | None,
    experiment_name: str | None,
    run_name: str | None,
    policy: str,
    params: tuple[str, ...],
    metrics: tuple[str, ...],
    test_start: str | None,
    horizon: int,
    windows: int | None,
    step: int | None,
    refit: str | None,
    input_size: int | None,
    tags: tuple[str, ...],
    tracking_uri: str | None,
    register_model: str | None,
    alias: str,
    id_col: str | None,
    date_col: str | None,
    price_col: str | None,
    engine: str,
    scheduler: str | None,
    partitions: int | None,
    frame_dir: str | None,
) -> None:
    """Evaluate a model walk-forward and log the run to MLflow."""
    from pokewatch_core.engines.front_door import cli_spelling
    from pokewatch_core.evaluation.spec import EvaluationSpec
    from pokewatch_core.progress import StageDisplay
    from pokewatch_core.tracking.log import log_evaluation
    from pokewatch_core.tracking.store import (
        check_run_name,
        check_run_options,
        heal_abandoned_runs,
        reach_store,
    )

    # 1. Check every option, then the store, before the data loads and long before a run.
    tag_values = pairs(tags, "--tag")
    path = _data_path(data_path)
    if register_model is None and _given("alias"):
        raise click.BadParameter("--alias needs --register-model")
    options = _engine_options(engine, scheduler, partitions, frame_dir, id_col, date_col,
                              price_col)  # fmt: skip
    chosen = options.engine_for(path, spell=cli_spelling)
    chosen.check_output(frame_dir)
    if register_model is not None and not chosen.holds_frame:
        raise click.BadParameter(
            f"--register-model needs --engine local: a {chosen.name} evaluation logs no model "
            "(its evaluation frame stays partitioned on disk)"
        )
    backtest = backtest_from(horizon, windows, step, refit, input_size)
    spec = EvaluationSpec.build(model, policy, list(metrics) or None, pairs(params, "-p"),
                                test_start, backtest, spell=cli_spelling)  # fmt: skip
    if experiment_name is not None and not experiment_name.strip():
        raise ConfigError("--experiment-name must not be empty")
    check_run_options(experiment_name or DEFAULT_EXPERIMENT, tracking_uri, register_model, alias)
    check_run_name(run_name)
    store = reach_store(tracking_uri)  # resolved and checked once, before the evaluation
    report_healed(heal_abandoned_runs(store.uri), err=False)
    # 2. Load and validate, 3. fit, predict, decide, score, 4. analyse, 5. log.
    with StageDisplay() as display, chosen:
        chosen.open(display)
        result = chosen.evaluate(spec, progress=display, output_dir=frame_dir)
        display("analysing")
        analyses = result.analyses
        display("logging to MLflow")
        logged = log_evaluation(
            result,
            experiment_name=experiment_name,  # None: the default, or `mlflow run`'s
            run_name=run_name or None,
            tags=tag_values,
            data_source=path,
            tracking_uri=store,
            register_model=register_model,
            alias=alias,
        )
    _report_training(result, analyses.reports_signals, data_path, logged, alias)


def _data_path(data_path: str | None) -> str:
    """``--data-path``, else the embedded sample."""
    from pokewatch_core.data.sample_data import embedded_sample_path

    if data_path is not None and not data_path.strip():
        raise click.BadParameter("--data-path must not be empty (leave it out for the sample)")
    return data_path or str(embedded_sample_path())


def _given(option: str) -> bool:
    """Whether the command line gave ``option`` (not its default)."""
    source = click.get_current_context().get_parameter_source(option)
    return source is not click.core.ParameterSource.DEFAULT


def _engine_options(
    engine: str,
    scheduler: str | None,
    partitions: int | None,
    frame_dir: str | None,
    id_col: str | None,
    date_col: str | None,
    price_col: str | None,
) -> EngineOptions:
    """The engine options of the command line (checked when the engine is made)."""
    from pokewatch_core.engines.front_door import EngineOptions

    options = EngineOptions(engine, scheduler, partitions, frame_dir, id_col, date_col,
                            price_col)  # fmt: skip
    if engine == "dask":
        _quiet_dask()
    return options


def _quiet_dask() -> None:
    """distributed sets its loggers' levels when it is first imported (INFO for the
    scheduler's banner): import it now and quiet them, unless ``--debug``."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return  # the engine says which extra to install
    loud = bool(click.get_current_context().find_root().params.get("debug"))
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.DEBUG if loud else logging.ERROR)


def _report_training(
    result: Any, signals: bool, data_path: str | None, logged: Any, alias: str
) -> None:
    """What ``train`` evaluated, its metrics, and where the run and model are."""
    from pokewatch_core.evaluation.summary import (
        backtest_section,
        data_overview,
        metric_units,
        metrics_table,
        pooled_metrics,
        signal_quality_section,
    )

    source = data_path or "embedded sample (sv2a)"
    # one line each: a name or path holding a line break must not forge the next line
    echo(
        f"Evaluated {printable(result.model.name)} with policy {printable(result.policy.name)} "
        f"on {printable(source)}"
    )
    for key, value in data_overview(result).items():
        echo(f"  {key}: {value}")
    echo("Metrics:" if result.backtest is None else "Metrics (pooled over the horizons):")
    echo(metrics_table(pooled_metrics(result), metric_units(result)))
    if result.backtest is not None:
        echo(backtest_section(result))
    if signals:
        echo(signal_quality_section(result))
    echo(
        f"Run {logged.run_id} logged to experiment '{printable(logged.experiment_name)}' at "
        f"{printable(logged.tracking_uri)}"
    )
    if logged.model_uri:
        echo(f"Model: {logged.model_uri}")
    if logged.registered_version:
        echo(
            f"Registered: models:/{logged.registered_model}@{alias} "
            f"(version {logged.registered_version})"
        )
    # MLflow 3's UI opens on its GenAI view unless told this is model training
    runs_page = f"#/experiments/{logged.experiment_id}?workflowType=machine_learning"
    if logged.tracking_uri.startswith(("http://", "https://")):
        echo(f"Open the MLflow UI: {logged.tracking_uri.rstrip('/')}/{runs_page}")
    else:
        uri = shlex.quote(logged.tracking_uri)  # a path with a space: still one argument
        command = f"{runner_prefix()}mlflow ui --backend-store-uri {uri}"
        echo(f"Open the MLflow UI: {printable(command)}")
        echo(f"  then the runs: http://127.0.0.1:5000/{runs_page}")


@cli.command(
    epilog=example(
        "pokewatch sweep -p window_size=3,5,7,14 -p buy_threshold_pct=0.05:0.20:0.05 --jobs 2"
    )
)
@model_option
@data_path_option
@experiment_option("MLflow experiment of the parent and child runs, created if missing.")
@click.option("--run-name", "--run_name", "run_name", default=None, help="Parent run name.")
@policy_option
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUES",
    help="A parameter and its values: V1,V2,... (a list), START:STOP:STEP (an inclusive "
    "range) or one value.",
)
@click.option(
    "--grid",
    "grid_file",
    default=None,
    metavar="FILE",
    help="TOML or YAML file of parameters: a value, a list, or {start, stop, step}.",
)
@click.option(
    "--metric",
    default=DEFAULT_SWEEP_METRIC,
    show_default=True,
    metavar="NAME",
    help="Metric that picks the best combination, in its own direction (rmse: smallest).",
)
@click.option(
    "--jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=256),
    help="Combinations evaluated in parallel (processes).",
)
@click.option(
    "--log-models",
    type=click.Choice(["best", "all"]),
    default="best",
    show_default=True,
    help="Which child runs get plots, tables and the model.",
)
@test_start_option
@backtest_option_set
@tag_option
@tracking_uri_option
@column_options
@engine_options
def sweep(
    model: str,
    data_path: str | None,
    experiment_name: str,
    run_name: str | None,
    policy: str,
    params: tuple[str, ...],
    grid_file: str | None,
    metric: str,
    jobs: int,
    log_models: str,
    test_start: str | None,
    horizon: int,
    windows: int | None,
    step: int | None,
    refit: str | None,
    input_size: int | None,
    tags: tuple[str, ...],
    tracking_uri: str | None,
    id_col: str | None,
    date_col: str | None,
    price_col: str | None,
    engine: str,
    scheduler: str | None,
    partitions: int | None,
    frame_dir: str | None,
) -> None:
    """Evaluate every combination of parameter values: one parent run, a child run each."""
    from pokewatch_core.engines.front_door import cli_spelling
    from pokewatch_core.evaluation.horizon_keys import check_horizon_key, metric_of_key
    from pokewatch_core.evaluation.spec import parse_test_start
    from pokewatch_core.plugins.registry import get_plugins
    from pokewatch_core.sweeps.grid import parse_values, read_grid
    from pokewatch_core.sweeps.plan import ranking_direction
    from pokewatch_core.tracking.store import check_run_name, check_run_options, reach_store

    grid: dict[str, list[Any]] = read_grid(grid_file) if grid_file else {}
    for key, text in pairs(params, "-p").items():
        if key in grid:
            raise ConfigError(f"parameter {key!r} is given by both --grid and -p")
        grid[key] = parse_values(key, text)
    backtest = backtest_from(horizon, windows, step, refit, input_size)
    backtest.check(parse_test_start(test_start), cli_spelling)
    check_horizon_key(metric, backtest.horizon, "--metric")
    if metric_of_key(metric) not in get_plugins().metrics:
        valid = ", ".join(get_plugins().metrics.names())
        raise ConfigError(f"--metric {metric!r}: no such metric (valid: {valid})")
    greater = ranking_direction(metric)
    fixed = {k: v[0] for k, v in grid.items() if len(v) == 1}
    swept = {k: v for k, v in grid.items() if len(v) > 1}
    path = _data_path(data_path)
    options = _engine_options(engine, scheduler, partitions, frame_dir, id_col, date_col,
                              price_col)  # fmt: skip
    options.check(cli_spelling, jobs=jobs)  # refused here, by the command line's names
    check_run_options(experiment_name, tracking_uri, None, "champion")
    check_run_name(run_name)
    store = reach_store(tracking_uri)  # resolved and checked once, before the evaluations
    outcome = _run_sweep(model, path, swept, policy, fixed, test_start, metric, jobs, options,
                         experiment_name, run_name, tags, store, log_models,
                         backtest)  # fmt: skip
    shown = outcome.table.head(SWEEP_ROWS_SHOWN)
    columns_shown = ["rank", "trial", *[k for k in swept], metric]
    echo(
        f"Swept {len(outcome.trials)} combinations of {model} with policy {policy}; best by "
        f"{metric} ({'largest' if greater else 'smallest'} first):"
    )
    echo(shown[columns_shown].to_string(index=False))
    if len(outcome.table) > len(shown):  # say so: the rest are in the parent's tables/sweep.csv
        echo(
            f"(the best {len(shown)} of {len(outcome.table)}; every combination is in the parent "
            "run's tables/sweep.csv)"
        )
    best_id = outcome.child_run_ids[outcome.best.number]
    echo(
        f"Parent run {outcome.parent_run_id}, best child run {best_id} in experiment "
        f"'{printable(experiment_name)}' at {printable(outcome.tracking_uri)}"
    )


SWEEP_ROWS_SHOWN = 10  # the sweep summary's ranking rows


def _run_sweep(
    model: str,
    path: str,
    grid: dict[str, list[Any]],
    policy: str,
    fixed: dict[str, Any],
    test_start: str | None,
    metric: str,
    jobs: int,
    options: EngineOptions,
    experiment_name: str,
    run_name: str | None,
    tags: tuple[str, ...],
    store: Any,
    log_models: str,
    backtest: Any,
) -> Any:
    """``run_sweep`` logged, with progress on stderr (about ten lines in a log)."""
    from pokewatch_core.sweeps.grid import combinations
    from pokewatch_core.tracking.sweep import run_sweep

    live = sys.stderr.isatty()
    step = max(1, -(-len(combinations(grid)) // 10))  # in a log: about ten lines

    def progress(what: str, done: int, total: int) -> None:
        if live:
            click.echo(f"\r{what} {done}/{total} combinations", nl=done == total, err=True)
        elif done % step == 0 or done == total:
            click.echo(f"{what} {done}/{total} combinations", err=True)

    return run_sweep(
        model, path, grid, policy, None, fixed, test_start, metric=metric, jobs=jobs,
        engine=options, log=True, experiment_name=experiment_name, run_name=run_name or None,
        tags=pairs(tags, "--tag"), data_source=path, tracking_uri=store,
        log_models=log_models, progress=progress, backtest=backtest,
    )  # fmt: skip
