"""`pokewatch compare`: rank an experiment's runs, or put runs side by side."""

from __future__ import annotations

import json
import math
from typing import Any

import click

from pokewatch_core.cli.app import cli
from pokewatch_core.cli.options import (
    echo,
    example,
    experiment_option,
    report_healed,
    tracking_uri_option,
)
from pokewatch_core.defaults import (
    COMPARE_METRICS,
)
from pokewatch_core.errors import ConfigError
from pokewatch_core.evaluation.summary import format_value
from pokewatch_core.terminal import printable
from pokewatch_core.tracking.runs import RunRecord

RUN_PARAMS = ("model_type", "policy")


def default_ascending(metric: str) -> bool:
    """Whether ``metric`` ranks best when smallest: its own ``greater_is_better`` says (an
    unknown metric, or one with no direction, ranks largest first)."""
    from pokewatch_core.evaluation.horizon_keys import metric_of_key
    from pokewatch_core.plugins.registry import get_plugins

    metrics = get_plugins().metrics
    metric = metric_of_key(metric)
    if metric not in metrics or len(metrics.registrations(metric)) != 1:
        return False
    return metrics.get(metric).greater_is_better is False


def _table(header: list[str], rows: list[list[str]]) -> str:
    # names and values come from the store: no escape sequence reaches the terminal
    header = [printable(h) for h in header]
    rows = [[printable(c) for c in row] for row in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def varying_params(runs: list[RunRecord]) -> list[str]:
    """Parameters (other than model and policy) whose value differs between runs."""
    keys = sorted({k for r in runs for k in r.params} - set(RUN_PARAMS))
    return [k for k in keys if len({r.params.get(k) for r in runs}) > 1]


def scored_on(params: dict[str, Any]) -> str:
    """What a run scored, from its params: ``every date, horizon 1`` (the default),
    ``from 2025-10-01``, ``4 windows of horizon 7, step 7, 2025-10-25..2025-11-15``, with the
    refit and a sliding window when not the default. Runs are like for like only when this
    is the same."""
    # a backtest logs its cutoffs; a one-step run's `horizon`, if any, is a metric's parameter
    horizon = params.get("horizon", "1") if "cutoffs" in params else "1"
    mode = params.get("cutoffs", "test start" if params.get("test_start") else "every date")
    if mode == "windows":
        text = (
            f"{params.get('cutoff_count')} windows of horizon {horizon}, step "
            f"{params.get('step')}, cutoffs {params.get('first_cutoff')}.."
            f"{params.get('last_cutoff')}"
        )
    elif mode == "test start":
        text = f"from {params.get('test_start')}, horizon {horizon}"
    else:
        text = f"every date, horizon {horizon}"
    refit = params.get("refit")
    if refit is not None and refit != ("once" if mode == "test start" else "every"):
        text += f", refit {refit}"
    size = params.get("input_size")
    if size not in (None, "expanding"):
        text += f", sliding {size} periods"
    return text


def unlike_note(runs: list[RunRecord]) -> str | None:
    """A warning when ``runs`` did not score the same periods and horizons (None when they
    did): their figures are not like for like."""
    setups = sorted({scored_on(r.params) for r in runs})
    if len(setups) < 2:
        return None
    return (
        f"note: these runs scored {len(setups)} different periods or horizons (column "
        "'scored_on'): their figures are not like for like — compare runs of one backtest"
    )


def ranking(runs: list[RunRecord], metrics: list[str]) -> dict[str, Any]:
    """The ranking as data (for ``--json``)."""
    return {
        "metrics": metrics,
        "like_for_like": unlike_note(runs) is None,
        "runs": [
            {
                "rank": i + 1,
                "run_id": r.run_id,
                "run_name": r.run_name,
                "model": r.params.get("model_type"),
                "policy": r.params.get("policy"),
                "params": r.params,
                "scored_on": scored_on(r.params),
                "metrics": {m: r.metrics.get(m) for m in metrics},
            }
            for i, r in enumerate(runs)
        ],
    }


def ranking_table(runs: list[RunRecord], metrics: list[str]) -> str:
    """Rank, run, model, policy, the parameters that differ, and the chosen metrics."""
    unlike = unlike_note(runs)
    params = [p for p in varying_params(runs) if unlike is None or p not in SETUP_PARAMS]
    setup = ["scored_on"] if unlike is not None else []
    header = ["#", "run_id", "run_name", "model", "policy", *setup, *params, *metrics]
    rows = [
        [
            str(i + 1),
            r.run_id[:12],
            r.run_name,
            r.params.get("model_type", ""),
            r.params.get("policy", ""),
            *([scored_on(r.params)] if unlike is not None else []),
            *(r.params.get(p, "") for p in params),
            *(format_value(r.metrics.get(m, math.nan)) for m in metrics),
        ]
        for i, r in enumerate(runs)
    ]
    table = _table(header, rows)
    return table if unlike is None else f"{table}\n{unlike}"


SETUP_PARAMS = frozenset(
    {"test_start", "horizon", "cutoffs", "cutoff_count", "first_cutoff", "last_cutoff", "step",
     "refit", "input_size", "period"}
)  # fmt: skip
"""The params that say what a run scored (``scored_on`` sums them up)."""


SAME_WITHIN = 1e-9
"""Metric values this close (relative) are the same figure: sums added in another order (the
dask engine's merged states, another machine) differ in the last bits only."""


def _differ(values: list[Any]) -> bool:
    numbers = [v for v in values if isinstance(v, float)]
    if len(numbers) == len(values) and numbers:
        if all(math.isnan(v) for v in numbers):
            return False
        if any(math.isnan(v) for v in numbers):
            return True
        return not all(
            math.isclose(v, numbers[0], rel_tol=SAME_WITHIN, abs_tol=1e-12) for v in numbers
        )
    return len({str(v) for v in values}) > 1


def side_by_side(runs: list[RunRecord]) -> dict[str, Any]:
    """Every param and metric of the runs, with ``differs`` set where they disagree."""

    def rows(kind: str) -> list[dict[str, Any]]:
        keys = sorted({k for r in runs for k in getattr(r, kind)})
        out = []
        for key in keys:
            values = [getattr(r, kind).get(key) for r in runs]
            out.append({"name": key, "values": values, "differs": _differ(values)})
        return out

    return {
        "runs": [
            {"run_id": r.run_id, "run_name": r.run_name, "scored_on": scored_on(r.params)}
            for r in runs
        ],
        "like_for_like": unlike_note(runs) is None,
        "params": rows("params"),
        "metrics": rows("metrics"),
    }


def side_by_side_table(runs: list[RunRecord]) -> str:
    """Params then metrics, one column per run; a differing row is marked with ``*``."""
    data = side_by_side(runs)
    header = ["", "name", *(f"{r.run_name or r.run_id[:8]} ({r.run_id[:8]})" for r in runs)]
    rows = []
    for kind in ("params", "metrics"):
        for row in data[kind]:
            cells = ["" if v is None else format_value(v) for v in row["values"]]
            rows.append(["*" if row["differs"] else "", f"{kind[:-1]}.{row['name']}", *cells])
    unlike = unlike_note(runs)
    note = "" if unlike is None else f"\n{unlike}"
    return _table(header, rows) + "\n(* = differs between the runs)" + note


# ---- the command --------------------------------------------------------------------------------


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
    type=click.IntRange(min=1, max=50_000),  # MLflow's most results per search
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
    from pokewatch_core.tracking.store import heal_abandoned_runs, reach_store

    store = reach_store(tracking_uri)  # a bad or unreachable store is one line, before healing
    report_healed(heal_abandoned_runs(store.uri), err=as_json)
    if run_ids:
        runs = get_runs(list(run_ids), store)
        if as_json:
            echo(json.dumps(cmp.side_by_side(runs), indent=2, default=str))
        else:
            echo(cmp.side_by_side_table(runs))
        return
    chosen = list(metrics) or list(COMPARE_METRICS)
    order = cmp.default_ascending(chosen[0]) if ascending is None else ascending
    runs = search_runs(experiment_name, chosen[0], order, limit, store)
    present = sorted({m for r in runs for m in r.metrics})
    absent = [m for m in metrics if runs and m not in present]
    if absent:
        raise ConfigError(
            f"no finished run of experiment '{printable(experiment_name)}' has metric "
            f"{', '.join(repr(m) for m in absent)} (metrics present: {', '.join(present)})"
        )
    if as_json:
        echo(json.dumps(cmp.ranking(runs, chosen), indent=2, default=str))
    elif not runs:
        echo(f"No finished runs in experiment '{printable(experiment_name)}'.")
    else:
        direction = "ascending" if order else "descending"
        echo(f"Experiment '{printable(experiment_name)}', ranked by {chosen[0]} ({direction}):")
        echo(cmp.ranking_table(runs, chosen))
