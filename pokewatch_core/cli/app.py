"""The ``pokewatch`` group and its entry point ``main``, which maps errors to exit codes: 0
success; 2 bad usage or bad input (one line, no traceback); 1 anything else (one line; the
traceback only with ``--debug``); 128+N when ended by signal N. Heavy imports happen inside
commands so that ``pokewatch --help`` stays instant."""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence

import click

from pokewatch_core.cli.options import (
    echo,
)
from pokewatch_core.errors import ConfigError, PokeWatchError, Terminated
from pokewatch_core.interrupts import terminating_signals_raise
from pokewatch_core.terminal import printable, printable_lines
from pokewatch_core.version import __version__

# MLflow's telemetry calls an outside host from every process (and its thread once raced the
# environment under concurrent trainings): off unless the user set one of these themselves.
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


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
    """MLflow's INFO chatter, its pip-version warning, its artifact progress bars and urllib3's
    line per retry say nothing to act on: silenced unless ``--debug``. MLflow's HTTP retries
    are shortened either way."""
    if not loud:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        # with tqdm installed, MLflow draws an artifact progress bar (carriage returns) into
        # the output of train and compare
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's default HTTP retries last minutes: bounded by POKEWATCH_SERVER_WAIT
    from pokewatch_core.tracking.store import bound_server_waits

    bound_server_waits()
    logging.getLogger("mlflow").setLevel(logging.DEBUG if loud else logging.WARNING)
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("distributed").setLevel(logging.DEBUG if loud else logging.ERROR)


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
            echo(f"pokewatch: terminated by {name}", err=True)
            code = 128 + cause.signum
        elif isinstance(cause, KeyboardInterrupt):
            echo("pokewatch: interrupted", err=True)
            code = 130
        else:
            echo("pokewatch: aborted", err=True)
            code = 1
    except click.ClickException as exc:
        echo(f"pokewatch: error: {_one_line(exc.format_message())}", err=True)
        code = exc.exit_code
    except PokeWatchError as exc:
        debug = _debugging(context)
        if debug and not isinstance(exc, ConfigError):
            traceback.print_exc()
        echo(f"pokewatch: error: {_one_line(str(exc))}", err=True)
        code = exc.exit_code
    except BrokenPipeError:
        # the reader stopped reading (`pokewatch metrics | head`): end as a Unix tool killed
        # by SIGPIPE does, quietly with 141 (a gate's verdict cut short is no pass); stdout
        # goes to /dev/null so the interpreter's final flush cannot fail too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    except Exception as exc:
        debug = _debugging(context)
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run pokewatch --debug ... for the traceback)"
        echo(f"pokewatch: error: {type(exc).__name__}: {_one_line(str(exc))}{hint}", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
