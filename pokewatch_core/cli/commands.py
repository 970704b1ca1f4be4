"""The ``pokewatch`` command line (DESIGN §6).

Exit codes: 0 success; 2 bad usage or bad input (one line, no traceback); 1 anything else
(one line; the traceback only with ``--debug``). Heavy imports happen inside commands so that
``pokewatch --help`` stays instant.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pokewatch_core.columns import DATE, ID, PRICE
from pokewatch_core.defaults import (
    COMPARE_METRICS,
    DEFAULT_EXPERIMENT,
    DEFAULT_MODEL,
    DEFAULT_POLICY,
    DEFAULT_SWEEP_METRIC,
)
from pokewatch_core.errors import ConfigError, PokeWatchError, Terminated
from pokewatch_core.interrupts import terminating_signals_raise
from pokewatch_core.terminal import printable, printable_lines
from pokewatch_core.version import __version__

if TYPE_CHECKING:
    from pokewatch_core.engines.front_door import EngineOptions

GATE_FAILED = 3  # exit code of a gate whose rules did not all pass
F = TypeVar("F", bound=Callable[..., Any])
# MLflow's telemetry calls an outside host from every process (and its thread once raced the
# environment under concurrent trainings): off unless the user set one of these themselves.
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def _echo(text: object = "", err: bool = False) -> None:
    """``click.echo`` with control characters escaped (names come from users and plugins)."""
    click.echo(printable_lines(text), err=err)


def _pairs(values: Sequence[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        if key.strip() in out:
            raise click.BadParameter(f"{key.strip()!r} is given twice", param_hint=option)
        out[key.strip()] = value
    return out


def experiment_option(help_text: str, default: str | None = DEFAULT_EXPERIMENT) -> Callable[[F], F]:
    """``--experiment-name`` (alias ``--experiment_name``), shared by train and compare."""
    return click.option(
        "--experiment-name",
        "--experiment_name",
        "experiment_name",
        default=default,
        show_default=default is not None,
        help=help_text,
    )


tracking_uri_option = click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, then ./.env, then ./mlflow.db).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(__version__, prog_name="pokewatch")
@click.option("--debug", is_flag=True, help="Show tracebacks and MLflow's own log messages.")
@click.pass_context
def cli(context: click.Context, debug: bool) -> None:
    """PokeWatch: evaluate trading-card price models and log every run to MLflow."""
    _quiet_libraries(loud=debug)
    if context.invoked_subcommand is None:  # `pokewatch --debug` alone: the help, as bare
        click.echo(context.get_help())


def _quiet_libraries(loud: bool) -> None:
    """MLflow's INFO chatter, its pip-version warning and urllib3's line per retry say nothing
    to act on: silenced unless ``--debug``. MLflow's HTTP retries are shortened either way."""
    if not loud:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow's default HTTP retries last minutes; a CLI run should fail within seconds
    for name, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)
    logging.getLogger("mlflow").setLevel(logging.DEBUG if loud else logging.WARNING)
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("distributed").setLevel(logging.DEBUG if loud else logging.ERROR)


def _stacked(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``options`` in the order listed (as if written one per line)."""

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


# Options shared by train and sweep (click makes a new Option each time one is applied).
model_option = click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model to evaluate (see 'pokewatch plugins').",
)
data_path_option = click.option(
    "--data-path",
    "--data_path",
    "data_path",
    default=None,
    help="Price table (parquet or CSV). Default: the embedded sv2a sample.",
)
policy_option = click.option(
    "--policy", default=DEFAULT_POLICY, show_default=True, help="Signal policy."
)
test_start_option = click.option(
    "--test-start",
    default=None,
    metavar="DATE",
    help="Fit on rows before DATE; score only rows on or after it.",
)
tag_option = click.option(
    "--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Extra run tag."
)
column_options = _stacked(
    click.option("--id-col", default=None, help="Column holding the card id."),
    click.option("--date-col", default=None, help="Column holding the date."),
    click.option("--price-col", default=None, help="Column holding the market price."),
)
engine_options = _stacked(
    click.option(
        "--engine",
        type=click.Choice(["local", "dask"]),
        default="local",
        show_default=True,
        help="Evaluate in this process, or on a Dask cluster (pip install 'pokewatch[dask]').",
    ),
    click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS|local",
        help="With --engine dask: a scheduler address (tcp://host:8786), or 'local' (default) "
        "for a cluster on this machine.",
    ),
    click.option(
        "--partitions",
        type=click.IntRange(min=1),
        default=None,
        help="With --engine dask: card partitions (default: about a million rows each).",
    ),
    click.option(
        "--frame-dir",
        default=None,
        metavar="DIR",
        help="With --engine dask: a new or empty folder, shared with the workers, for the "
        "evaluation frame's parts (default: a temporary folder, removed once logged).",
    ),
)
"""``--engine``, ``--scheduler``, ``--partitions``, ``--frame-dir`` (train and sweep)."""


def example(command: str) -> str:
    """A help epilog showing one example command (kept verbatim by click)."""
    return f"\b\nExample:\n  {command}"


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
    from pokewatch_core.evaluation.spec import EvaluationSpec
    from pokewatch_core.progress import StageDisplay
    from pokewatch_core.tracking.log import log_evaluation
    from pokewatch_core.tracking.store import check_run_options, heal_abandoned_runs, reach_store

    # 1. Check every option, then the store, before the data loads and long before a run.
    tag_values = _pairs(tags, "--tag")
    path = _data_path(data_path)
    if register_model is None and _given("alias"):
        raise click.BadParameter("--alias needs --register-model")
    options = _engine_options(engine, scheduler, partitions, frame_dir, id_col, date_col,
                              price_col)  # fmt: skip
    chosen = options.engine_for(path)
    chosen.check_output(frame_dir)
    if register_model is not None and not chosen.holds_frame:
        raise click.BadParameter(
            f"--register-model needs --engine local: a {chosen.name} evaluation logs no model "
            "(its evaluation frame stays partitioned on disk)"
        )
    spec = EvaluationSpec.build(model, policy, list(metrics) or None, _pairs(params, "-p"),
                                test_start)  # fmt: skip
    if experiment_name is not None and not experiment_name.strip():
        raise ConfigError("--experiment-name must not be empty")
    check_run_options(experiment_name or DEFAULT_EXPERIMENT, tracking_uri, register_model, alias)
    store = reach_store(tracking_uri)  # resolved and checked once, before the evaluation
    _report_healed(heal_abandoned_runs(store.uri), err=False)
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
    jobs: int = 1,
) -> EngineOptions:
    """The engine options of the command line, checked (with the command line's names)."""
    from pokewatch_core.engines.front_door import EngineOptions, cli_spelling

    options = EngineOptions(engine, scheduler, partitions, frame_dir, id_col, date_col,
                            price_col)  # fmt: skip
    options.check(cli_spelling, jobs=jobs)
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
        data_overview,
        metric_units,
        metrics_table,
        signal_quality_section,
    )

    source = data_path or "embedded sample (sv2a)"
    _echo(f"Evaluated {result.model.name} with policy {result.policy.name} on {source}")
    for key, value in data_overview(result).items():
        _echo(f"  {key}: {value}")
    _echo("Metrics:")
    _echo(metrics_table(result.metrics, metric_units(result)))
    if signals:
        _echo(signal_quality_section(result))
    _echo(
        f"Run {logged.run_id} logged to experiment '{logged.experiment_name}' at "
        f"{logged.tracking_uri}"
    )
    if logged.model_uri:
        _echo(f"Model: {logged.model_uri}")
    if logged.registered_version:
        _echo(
            f"Registered: models:/{logged.registered_model}@{alias} "
            f"(version {logged.registered_version})"
        )
    # MLflow 3's UI opens on its GenAI view unless told this is model training
    runs_page = f"#/experiments/{logged.experiment_id}?workflowType=machine_learning"
    if logged.tracking_uri.startswith(("http://", "https://")):
        _echo(f"Open the MLflow UI: {logged.tracking_uri.rstrip('/')}/{runs_page}")
    else:
        _echo(f"Open the MLflow UI: {_runner()}mlflow ui --backend-store-uri {logged.tracking_uri}")
        _echo(f"  then the runs: http://127.0.0.1:5000/{runs_page}")


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
    from pokewatch_core.plugins.registry import get_plugins
    from pokewatch_core.sweeps.grid import parse_values, read_grid
    from pokewatch_core.sweeps.plan import ranking_direction
    from pokewatch_core.tracking.store import check_run_options, reach_store

    grid: dict[str, list[Any]] = read_grid(grid_file) if grid_file else {}
    for key, text in _pairs(params, "-p").items():
        if key in grid:
            raise ConfigError(f"parameter {key!r} is given by both --grid and -p")
        grid[key] = parse_values(key, text)
    if metric not in get_plugins().metrics:
        valid = ", ".join(get_plugins().metrics.names())
        raise ConfigError(f"--metric {metric!r}: no such metric (valid: {valid})")
    greater = ranking_direction(metric)
    fixed = {k: v[0] for k, v in grid.items() if len(v) == 1}
    swept = {k: v for k, v in grid.items() if len(v) > 1}
    path = _data_path(data_path)
    options = _engine_options(engine, scheduler, partitions, frame_dir, id_col, date_col,
                              price_col, jobs)  # fmt: skip
    check_run_options(experiment_name, tracking_uri, None, "champion")
    store = reach_store(tracking_uri)  # resolved and checked once, before the evaluations
    outcome = _run_sweep(model, path, swept, policy, fixed, test_start, metric, jobs, options,
                         experiment_name, run_name, tags, store, log_models)  # fmt: skip
    shown = outcome.table.head(10)
    columns_shown = ["rank", "trial", *[k for k in swept], metric]
    _echo(
        f"Swept {len(outcome.trials)} combinations of {model} with policy {policy}; best by "
        f"{metric} ({'largest' if greater else 'smallest'} first):"
    )
    _echo(shown[columns_shown].to_string(index=False))
    best_id = outcome.child_run_ids[outcome.best.number]
    _echo(
        f"Parent run {outcome.parent_run_id}, best child run {best_id} in experiment "
        f"'{experiment_name}' at {store.uri}"
    )


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
        tags=_pairs(tags, "--tag"), data_source=path, tracking_uri=store,
        log_models=log_models, progress=progress,
    )  # fmt: skip


@cli.command(
    epilog=example(
        "pokewatch gate --candidate 3f2a9c --champion models:/cards@champion "
        "--rule 'rmse<=1.02*champion' --rule 'strategy_sharpe>=0.5' --promote"
    )
)
@click.option("--candidate", required=True, metavar="RUN_ID", help="The candidate run (a prefix).")
@click.option(
    "--champion",
    "champion_uri",
    required=True,
    metavar="MODEL_URI",
    help="The champion: models:/NAME@ALIAS or models:/NAME/VERSION.",
)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="RULE",
    help="METRIC OP VALUE, VALUE a number, champion, F*champion or champion+-D (repeatable).",
)
@click.option(
    "--promote", is_flag=True, help="Move the alias to the candidate's version if all pass."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@tracking_uri_option
def gate(
    candidate: str,
    champion_uri: str,
    rules: tuple[str, ...],
    promote: bool,
    as_json: bool,
    tracking_uri: str | None,
) -> None:
    """Compare a candidate run with the champion model; exit 3 when a rule fails."""
    from pokewatch_core.evaluation.summary import format_value
    from pokewatch_core.tracking.gate import run_gate
    from pokewatch_core.tracking.gate_rules import parse_rule

    parsed = [parse_rule(rule) for rule in rules]
    report = run_gate(candidate, champion_uri, parsed, promote=promote, tracking_uri=tracking_uri)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        champion = f"version {report.champion_version}" if report.champion_version else "none yet"
        _echo(f"Candidate run {report.candidate_run_id} vs {report.model_name} ({champion})")
        header = ("rule", "candidate", "champion", "threshold", "verdict")
        rows = [
            (
                v.rule.text,
                format_value(v.candidate),
                "" if v.champion is None else format_value(v.champion),
                "" if v.threshold is None else format_value(v.threshold),
                ("pass" if v.passed else "FAIL") + (f" ({v.note})" if v.note else ""),
            )
            for v in report.verdicts
        ]
        widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            _echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if report.promoted_version:
            _echo(
                f"Promoted: models:/{report.model_name}@{report.alias} -> version "
                f"{report.promoted_version}"
            )
        elif promote and not report.passed:
            _echo(f"Not promoted: models:/{report.model_name}@{report.alias} unchanged")
    if not report.passed:
        raise click.exceptions.Exit(GATE_FAILED)


@cli.command(
    epilog=example("pokewatch features --raw-dir tests/data/raw --output data/processed.parquet")
)
@click.option(
    "--raw-dir",
    required=True,
    type=click.Path(path_type=str),
    help="Folder of <set>_prices_<YYYY-MM-DD>.parquet|csv snapshots.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=str),
    help="Processed table to write (.parquet or .csv).",
)
@click.option(
    "--set-name",
    default=None,
    help="Snapshot prefix, e.g. sv2a_pokemon_card_151 (needed if several sets).",
)
def features(raw_dir: str, output: str, set_name: str | None) -> None:
    """Combine daily raw snapshots into one processed table with leak-free features."""
    from pokewatch_core.data.features import write_features

    table = write_features(raw_dir, output, set_name)
    _echo(
        f"Wrote {output}: {len(table):,} rows, {table[ID].nunique():,} cards, "
        f"{table[DATE].nunique():,} days"
    )


@cli.command(
    "sample-data", epilog=example("pokewatch sample-data --output prices.parquet --cards 20")
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=str),
    help="File to write (.parquet or .csv).",
)
@click.option(
    "--cards",
    default=210,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of cards (the whole sv2a set has 210).",
)
@click.option(
    "--days",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of consecutive days.",
)
@click.option(
    "--seed",
    default=151,
    show_default=True,
    type=click.IntRange(min=0),
    help="Random seed, 0 or more (same seed, same panel).",
)
@click.option("--end", default="2025-11-22", show_default=True, help="Last date of the panel.")
@click.option("--id-col", default=ID, show_default=True, help="Name of the card-id column.")
@click.option("--date-col", default=DATE, show_default=True, help="Name of the date column.")
@click.option("--price-col", default=PRICE, show_default=True, help="Name of the price column.")
def sample_data(
    output: str,
    cards: int,
    days: int,
    seed: int,
    end: str,
    id_col: str,
    date_col: str,
    price_col: str,
) -> None:
    """Generate a realistic synthetic sv2a price panel of any size (deterministic per seed),
    optionally with other column names (e.g. Nixtla's unique_id, ds, y)."""
    from datetime import date

    from pokewatch_core.data.sample_data import check_size, generate_prices
    from pokewatch_core.data.tables import DATE, ID, PRICE
    from pokewatch_core.files import atomic_write_table

    try:
        date.fromisoformat(end)
    except ValueError as exc:
        raise click.BadParameter(f"expected a date such as 2025-11-22, got {end!r}") from exc
    names = {ID: id_col, DATE: date_col, PRICE: price_col}
    if len(set(names.values())) < 3:
        raise click.BadParameter("the id, date and price columns need three different names")
    check_size(cards, days)
    frame = generate_prices(cards=cards, days=days, seed=seed, end=end).rename(columns=names)
    atomic_write_table(frame, Path(output))
    _echo(f"Wrote {output}: {len(frame):,} rows, {cards:,} cards x {days:,} days")


def _format_default(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _component_lines(infos: list[dict[str, Any]], with_kind: bool = False) -> list[str]:
    """Components as aligned columns: [kind], name, parameters (one per line), description."""
    rows: list[list[str]] = []
    for info in infos:
        if "conflict" in info:
            params = [""]
            description = f"CONFLICT: registered by {' and '.join(info['conflict'])}"
        else:
            params = [
                f"{p['name']}: {p['type']} = {_format_default(p['default'])}"
                for p in info["parameters"]
            ] or [""]
            description = info["description"]
        first = [info["kind"]] if with_kind else []
        rows.append([*first, info["name"], params[0], description])
        rows += [[*([""] if with_kind else []), "", extra, ""] for extra in params[1:]]
    header = [*(["kind"] if with_kind else []), "name", "parameters", "description"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


@cli.command(epilog=example("pokewatch plugins --all"))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Include the default plugins.")
def plugins(as_json: bool, show_all: bool) -> None:
    """Installed plugins: distribution, hooks, components, failures and conflicts."""
    from pokewatch_core.plugins.catalog import plugins_report

    report = plugins_report(include_defaults=show_all)
    if as_json:
        _echo(json.dumps(report, indent=2, default=str))
        return
    if not report["plugins"] and not report["failed"]:
        _echo("No third-party plugins installed (--all shows the defaults).")
    for entry in report["plugins"]:
        origin = f"{entry['distribution']} {entry['version']}" if entry["distribution"] else "local"
        _echo(f"{entry['name']} ({origin})  hooks: {', '.join(entry['hooks']) or 'none'}")
        for line in _component_lines(entry["components"], with_kind=True):
            _echo(f"  {line}")
    if report["failed"]:
        _echo("Failed to load:")
        for entry in report["failed"]:
            origin = (
                f" ({entry['distribution']} {entry['version']})" if entry["distribution"] else ""
            )
            _echo(f"  {entry['name']}{origin}: {entry['error']}")
    if report["conflicts"]:
        _echo("Conflicts (a name registered by several plugins cannot be used):")
        for c in report["conflicts"]:
            _echo(f"  {c['kind']} '{c['name']}': {', '.join(c['plugins'])}")


def _component_command(kind: str, title: str) -> None:
    @cli.command(
        name=title,
        help=f"List the {title} that can be used, with their parameters.",
        epilog=example(f"pokewatch {title} --json"),
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def command(as_json: bool) -> None:
        from pokewatch_core.plugins.catalog import components

        listed = components(kind)
        if as_json:
            _echo(json.dumps(listed, indent=2, default=str))
            return
        for line in _component_lines(listed):
            _echo(line)


_component_command("model", "models")
_component_command("metric", "metrics")
_component_command("policy", "policies")


@cli.command(epilog=example("pokewatch compare --metric rmse --metric mape"))
@click.argument("run_ids", nargs=-1)
@experiment_option("Experiment to rank.")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="Metric to rank by (the first) and show (repeatable). "
    "Default: rmse, mape, coverage_rate, strategy_total_return.",
)
@click.option(
    "--ascending/--descending",
    default=None,
    help="Rank order. Default: the metric's own direction (smallest first for errors such as "
    "rmse, mase or drawdown), largest first otherwise.",
)
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of runs ranked.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@tracking_uri_option
def compare(
    run_ids: tuple[str, ...],
    experiment_name: str,
    metrics: tuple[str, ...],
    ascending: bool | None,
    limit: int,
    as_json: bool,
    tracking_uri: str | None,
) -> None:
    """Rank an experiment's runs by a metric, or show RUN_IDs side by side (a unique prefix
    of a run id, as the ranking prints it, is enough)."""
    from pokewatch_core.cli import compare as cmp
    from pokewatch_core.tracking.runs import get_runs, search_runs
    from pokewatch_core.tracking.store import heal_abandoned_runs

    _report_healed(heal_abandoned_runs(tracking_uri), err=as_json)
    if run_ids:
        runs = get_runs(list(run_ids), tracking_uri)
        if as_json:
            _echo(json.dumps(cmp.side_by_side(runs), indent=2, default=str))
        else:
            _echo(cmp.side_by_side_table(runs))
        return
    chosen = list(metrics) or list(COMPARE_METRICS)
    order = cmp.default_ascending(chosen[0]) if ascending is None else ascending
    runs = search_runs(experiment_name, chosen[0], order, limit, tracking_uri)
    present = sorted({m for r in runs for m in r.metrics})
    absent = [m for m in metrics if runs and m not in present]
    if absent:
        raise ConfigError(
            f"no finished run of experiment '{experiment_name}' has metric "
            f"{', '.join(repr(m) for m in absent)} (metrics present: {', '.join(present)})"
        )
    if as_json:
        _echo(json.dumps(cmp.ranking(runs, chosen), indent=2, default=str))
    elif not runs:
        _echo(f"No finished runs in experiment '{experiment_name}'.")
    else:
        direction = "ascending" if order else "descending"
        _echo(f"Experiment '{experiment_name}', ranked by {chosen[0]} ({direction}):")
        _echo(cmp.ranking_table(runs, chosen))


def _report_healed(run_ids: list[str], err: bool) -> None:
    """Say which RUNNING runs were found abandoned (their process gone) and marked FAILED."""
    if run_ids:
        _echo(
            f"Marked {len(run_ids)} abandoned run(s) FAILED (their process on this host is "
            f"gone; tag pokewatch.abandoned=true): {', '.join(run_ids)}",
            err=err,
        )


def _runner() -> str:
    """``uv run `` when this process was started by uv (which sets ``UV``), so that a printed
    command works when pasted: the project's mlflow is then not on the shell's PATH."""
    return "uv run " if os.environ.get("UV") else ""


def _one_line(text: str) -> str:
    return printable(" ".join(str(text).split()))


class _PrintableFormatter(logging.Formatter):
    """Log lines (plugin warnings name plugins and files) with control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return printable_lines(super().format(record))


def disable_telemetry() -> None:
    """Turn MLflow's telemetry off in this process and its children, unless the user set
    ``MLFLOW_DISABLE_TELEMETRY`` or ``DO_NOT_TRACK`` themselves."""
    if not any(name in os.environ for name in TELEMETRY_OFF):
        os.environ.update(TELEMETRY_OFF)


def _debugging(context: click.Context | None) -> bool:
    """Whether the command line asked for ``--debug`` (False if it did not parse)."""
    return bool(context is not None and context.params.get("debug"))


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and maps errors to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    disable_telemetry()
    handler = logging.StreamHandler()
    handler.setFormatter(_PrintableFormatter("pokewatch: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # no-op if configured
    context: click.Context | None = None
    try:
        with terminating_signals_raise():
            # parsed here rather than by cli.main, so that --debug is known to the handlers
            context = cli.make_context("pokewatch", args or ["--help"])
            with context:
                code = cli.invoke(context)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # click turns KeyboardInterrupt (and so Terminated) into Abort
        cause = exc.__cause__ if isinstance(exc, click.exceptions.Abort) else exc
        if isinstance(cause, Terminated):
            name = signal.Signals(cause.signum).name
            _echo(f"pokewatch: terminated by {name}", err=True)
            code = 128 + cause.signum
        elif isinstance(cause, KeyboardInterrupt):
            _echo("pokewatch: interrupted", err=True)
            code = 130
        else:
            _echo("pokewatch: aborted", err=True)
            code = 1
    except click.ClickException as exc:
        _echo(f"pokewatch: error: {_one_line(exc.format_message())}", err=True)
        code = exc.exit_code
    except PokeWatchError as exc:
        debug = _debugging(context)
        if debug and not isinstance(exc, ConfigError):
            traceback.print_exc()
        _echo(f"pokewatch: error: {_one_line(str(exc))}", err=True)
        code = exc.exit_code
    except Exception as exc:
        debug = _debugging(context)
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run pokewatch --debug ... for the traceback)"
        _echo(f"pokewatch: error: {type(exc).__name__}: {_one_line(str(exc))}{hint}", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
