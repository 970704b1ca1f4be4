"""What the commands share: printing, KEY=VALUE pairs, the options of train and sweep,
help epilogs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from pokewatch_core.defaults import (
    DEFAULT_EXPERIMENT,
    DEFAULT_MODEL,
    DEFAULT_POLICY,
)
from pokewatch_core.terminal import printable_lines

F = TypeVar("F", bound=Callable[..., Any])


def echo(text: object = "", err: bool = False) -> None:
    """``click.echo`` with control characters escaped (names come from users and plugins)."""
    click.echo(printable_lines(text), err=err)


def pairs(values: Sequence[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        if key.strip() in out:
            raise click.BadParameter(f"{key.strip()!r} is given twice", param_hint=option)
        out[key.strip()] = value
    if option == "--tag":
        from pokewatch_core.errors import ConfigError
        from pokewatch_core.tracking.store import check_user_tags

        try:
            check_user_tags(out)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
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


def stacked(*options: Callable[[F], F]) -> Callable[[F], F]:
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


def _not_blank(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():  # `--test-start "$UNSET"` is no split asked for
        raise click.BadParameter("must not be empty (leave it out for no split)")
    return value


test_start_option = click.option(
    "--test-start",
    default=None,
    metavar="DATE",
    callback=_not_blank,
    help="Fit on rows before DATE; score only rows on or after it.",
)


backtest_option_set = stacked(
    click.option(
        "--horizon",
        type=int,
        default=1,
        show_default=True,
        help="Forecast this many periods ahead (days for daily data); metrics per horizon.",
    ),
    click.option(
        "--windows",
        type=int,
        default=None,
        help="Backtest from N cutoffs (default: every date) ending HORIZON before the last date.",
    ),
    click.option(
        "--step", type=int, default=None, help="Periods between windows (default: HORIZON)."
    ),
    click.option(
        "--refit",
        default=None,
        metavar="every|once|K",
        help="Fit the model at every window (default), once, or every K windows.",
    ),
    click.option(
        "--input-size",
        type=int,
        default=None,
        help="Fit and predict on a sliding window of this many periods (default: expanding).",
    ),
)
"""``--horizon``, ``--windows``, ``--step``, ``--refit``, ``--input-size`` (docs/backtests.md),
shared by train and sweep; ``backtest_from`` turns them into ``BacktestOptions``."""


def backtest_from(
    horizon: int, windows: int | None, step: int | None, refit: str | None, input_size: int | None
) -> Any:
    """The command line's backtest options."""
    from pokewatch_core.engines.front_door import backtest_options

    return backtest_options(horizon, windows, step, refit, input_size, spell="--refit")


tag_option = click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra run tag (keys starting with mlflow. or pokewatch. are reserved).",
)


column_options = stacked(
    click.option("--id-col", default=None, help="Column holding the card id."),
    click.option("--date-col", default=None, help="Column holding the date."),
    click.option("--price-col", default=None, help="Column holding the market price."),
)


engine_options = stacked(
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


def report_healed(run_ids: list[str], err: bool) -> None:
    """Say which RUNNING runs were found abandoned (their process gone) and marked FAILED."""
    if run_ids:
        echo(
            f"Marked {len(run_ids)} abandoned run(s) FAILED (their process on this host is "
            f"gone; tag pokewatch.abandoned=true): {', '.join(run_ids)}",
            err=err,
        )


def runner_prefix() -> str:
    """``uv run `` when this process was started by uv (which sets ``UV``), so that a printed
    command works when pasted: the project's mlflow is then not on the shell's PATH."""
    return "uv run " if os.environ.get("UV") else ""
