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
from typing import Any, TypeVar

import click

from pokewatch_core.errors import ConfigError, PokeWatchError, Terminated
from pokewatch_core.interrupts import terminating_signals_raise
from pokewatch_core.terminal import printable, printable_lines
from pokewatch_core.version import __version__

DEFAULT_EXPERIMENT = "pokewatch_baseline"  # repeated from tracking.py to keep mlflow unimported
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
        out[key.strip()] = value
    return out


def experiment_option(help_text: str) -> Callable[[F], F]:
    """``--experiment-name`` (alias ``--experiment_name``), shared by train and compare."""
    return click.option(
        "--experiment-name",
        "--experiment_name",
        "experiment_name",
        default=DEFAULT_EXPERIMENT,
        show_default=True,
        help=help_text,
    )


tracking_uri_option = click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, then ./.env, then ./mlflow.db).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pokewatch")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
def cli(debug: bool) -> None:
    """PokeWatch: evaluate trading-card price models and log every run to MLflow."""


@cli.command()
@click.option(
    "--model",
    "model",
    default="baseline_moving_average",
    show_default=True,
    help="Model to evaluate (see 'pokewatch plugins').",
)
@click.option(
    "--data-path",
    "--data_path",
    "data_path",
    default=None,
    help="Price table (parquet or CSV). Default: the embedded sv2a sample.",
)
@experiment_option("MLflow experiment.")
@click.option("--run-name", "--run_name", "run_name", default=None, help="MLflow run name.")
@click.option("--policy", default="threshold", show_default=True, help="Signal policy.")
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
@click.option(
    "--test-start",
    default=None,
    metavar="DATE",
    help="Fit on rows before DATE; score only rows on or after it.",
)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Extra run tag.")
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
@click.option("--id-col", default=None, help="Column holding the card id.")
@click.option("--date-col", default=None, help="Column holding the date.")
@click.option("--price-col", default=None, help="Column holding the market price.")
def train(
    model: str,
    data_path: str | None,
    experiment_name: str,
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
) -> None:
    """Evaluate a model walk-forward and log the run to MLflow."""
    from pokewatch_core.data import load_prices
    from pokewatch_core.evaluation import evaluate, resolve_components
    from pokewatch_core.progress import StageDisplay
    from pokewatch_core.sample_data import embedded_sample_path
    from pokewatch_core.summary import data_overview, metrics_table, signal_quality_section
    from pokewatch_core.tracking import (
        check_reachable,
        check_run_options,
        heal_abandoned_runs,
        log_evaluation,
        resolve_tracking_uri,
    )

    param_values = _pairs(params, "-p")
    tag_values = _pairs(tags, "--tag")
    if data_path is not None and not data_path.strip():
        raise click.BadParameter("--data-path must not be empty (leave it out for the sample)")
    context = click.get_current_context()
    if register_model is None and (
        context.get_parameter_source("alias") is not click.core.ParameterSource.DEFAULT
    ):
        raise click.BadParameter("--alias needs --register-model")
    # Everything is checked before the data loads and long before a run starts.
    resolve_components(model, policy, list(metrics) or None, param_values)
    check_run_options(experiment_name, tracking_uri, register_model, alias)
    check_reachable(resolve_tracking_uri(tracking_uri))  # before minutes of evaluation
    _report_healed(heal_abandoned_runs(tracking_uri), err=False)
    path = data_path or str(embedded_sample_path())
    source = data_path or "embedded sample (sv2a)"
    with StageDisplay() as display:
        display(f"reading {Path(path).name}")
        table = load_prices(path, id_col=id_col, date_col=date_col, price_col=price_col)
        result = evaluate(
            model,
            table,
            policy=policy,
            metrics=list(metrics) or None,
            params=param_values,
            test_start=test_start,
            source=path,
            progress=display,
        )
        display("logging to MLflow")
        logged = log_evaluation(
            result,
            experiment_name=experiment_name,
            run_name=run_name or None,
            tags=tag_values,
            data_source=path,
            tracking_uri=tracking_uri,
            register_model=register_model,
            alias=alias,
        )
    _echo(f"Evaluated {result.model.name} with policy {result.policy.name} on {source}")
    for key, value in data_overview(result).items():
        _echo(f"  {key}: {value}")
    _echo("Metrics:")
    _echo(metrics_table(result.metrics))
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
    if logged.tracking_uri.startswith(("http://", "https://")):
        _echo(f"Open the MLflow UI: {logged.tracking_uri}")
    else:
        _echo(f"Open the MLflow UI: mlflow ui --backend-store-uri {logged.tracking_uri}")


@cli.command()
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
    from pokewatch_core.features import write_features

    table = write_features(raw_dir, output, set_name)
    _echo(
        f"Wrote {output}: {len(table):,} rows, {table['card_id'].nunique():,} cards, "
        f"{table['date'].nunique():,} days"
    )


@cli.command("sample-data")
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=str),
    help="File to write (.parquet or .csv).",
)
@click.option("--cards", default=210, show_default=True, type=click.IntRange(min=1))
@click.option("--days", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=151, show_default=True, type=click.IntRange(min=0))
@click.option("--end", default="2025-11-22", show_default=True, help="Last date of the panel.")
def sample_data(output: str, cards: int, days: int, seed: int, end: str) -> None:
    """Generate a realistic synthetic sv2a price panel of any size (deterministic per seed)."""
    from datetime import date

    from pokewatch_core.sample_data import check_size, write_sample

    try:
        date.fromisoformat(end)
    except ValueError as exc:
        raise click.BadParameter(f"expected a date such as 2025-11-22, got {end!r}") from exc
    check_size(cards, days)
    frame = write_sample(output, cards=cards, days=days, seed=seed, end=end)
    _echo(f"Wrote {output}: {len(frame):,} rows, {cards:,} cards x {days:,} days")


def _format_default(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _echo_component(info: dict[str, Any], indent: str = "  ") -> None:
    if "conflict" in info:
        owners = " and ".join(info["conflict"])
        _echo(f"{indent}{info['kind']:<7}{info['name']}  CONFLICT: registered by {owners}")
        return
    _echo(f"{indent}{info['kind']:<7}{info['name']}  {info['description']}")
    for p in info["parameters"]:
        _echo(f"{indent}{'':<7}  {p['name']}: {p['type']} = {_format_default(p['default'])}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Include the default plugins.")
def plugins(as_json: bool, show_all: bool) -> None:
    """Installed plugins: distribution, hooks, components, failures and conflicts."""
    from pokewatch_core.catalog import plugins_report

    report = plugins_report(include_defaults=show_all)
    if as_json:
        _echo(json.dumps(report, indent=2, default=str))
        return
    if not report["plugins"] and not report["failed"]:
        _echo("No third-party plugins installed (--all shows the defaults).")
    for entry in report["plugins"]:
        origin = f"{entry['distribution']} {entry['version']}" if entry["distribution"] else "local"
        _echo(f"{entry['name']} ({origin})  hooks: {', '.join(entry['hooks']) or 'none'}")
        for component in entry["components"]:
            _echo_component(component)
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
    @cli.command(name=title, help=f"List the {title} that can be used.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def command(as_json: bool) -> None:
        from pokewatch_core.catalog import components

        listed = components(kind)
        if as_json:
            _echo(json.dumps(listed, indent=2, default=str))
            return
        for info in listed:
            _echo_component(info, indent="")


_component_command("model", "models")
_component_command("metric", "metrics")
_component_command("policy", "policies")


@cli.command()
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
    help="Rank order. Default: ascending for errors (rmse, mape, drawdown, "
    "turnover), descending otherwise.",
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
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
    """Rank an experiment's runs by a metric, or show RUN_IDs side by side."""
    from pokewatch_core import compare as cmp
    from pokewatch_core.tracking import get_runs, heal_abandoned_runs, search_runs

    _report_healed(heal_abandoned_runs(tracking_uri), err=as_json)
    if run_ids:
        runs = get_runs(list(run_ids), tracking_uri)
        if as_json:
            _echo(json.dumps(cmp.side_by_side(runs), indent=2, default=str))
        else:
            _echo(cmp.side_by_side_table(runs))
        return
    chosen = list(metrics) or list(cmp.DEFAULT_METRICS)
    order = cmp.default_ascending(chosen[0]) if ascending is None else ascending
    runs = search_runs(experiment_name, chosen[0], order, limit, tracking_uri)
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


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and maps errors to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    disable_telemetry()
    debug = "--debug" in args
    handler = logging.StreamHandler()
    handler.setFormatter(_PrintableFormatter("pokewatch: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])  # no-op if configured
    if not debug:  # MLflow's INFO chatter and its pip-version warning say nothing to act on
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow's default HTTP retries last minutes; a CLI run should fail within seconds
    for name, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(name, value)
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
        logging.getLogger("urllib3").setLevel(logging.ERROR)  # one line per retry otherwise
    try:
        with terminating_signals_raise():
            code = cli.main(args=args, prog_name="pokewatch", standalone_mode=False)
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
        if debug and not isinstance(exc, ConfigError):
            traceback.print_exc()
        _echo(f"pokewatch: error: {_one_line(str(exc))}", err=True)
        code = exc.exit_code
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run with --debug for the traceback)"
        _echo(f"pokewatch: error: {type(exc).__name__}: {_one_line(str(exc))}{hint}", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
