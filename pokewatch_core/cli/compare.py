"""`pokewatch compare`: rank an experiment's runs, or put runs side by side."""

from __future__ import annotations

import math
from typing import Any

from pokewatch_core.evaluation.summary import format_value
from pokewatch_core.terminal import printable
from pokewatch_core.tracking.runs import RunRecord

RUN_PARAMS = ("model_type", "policy")


def default_ascending(metric: str) -> bool:
    """Whether ``metric`` ranks best when smallest: its own ``greater_is_better`` says (an
    unknown metric, or one with no direction, ranks largest first)."""
    from pokewatch_core.plugins.registry import get_plugins

    metrics = get_plugins().metrics
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


def ranking(runs: list[RunRecord], metrics: list[str]) -> dict[str, Any]:
    """The ranking as data (for ``--json``)."""
    return {
        "metrics": metrics,
        "runs": [
            {
                "rank": i + 1,
                "run_id": r.run_id,
                "run_name": r.run_name,
                "model": r.params.get("model_type"),
                "policy": r.params.get("policy"),
                "params": r.params,
                "metrics": {m: r.metrics.get(m) for m in metrics},
            }
            for i, r in enumerate(runs)
        ],
    }


def ranking_table(runs: list[RunRecord], metrics: list[str]) -> str:
    """Rank, run, model, policy, the parameters that differ, and the chosen metrics."""
    params = varying_params(runs)
    header = ["#", "run_id", "run_name", "model", "policy", *params, *metrics]
    rows = [
        [
            str(i + 1),
            r.run_id[:12],
            r.run_name,
            r.params.get("model_type", ""),
            r.params.get("policy", ""),
            *(r.params.get(p, "") for p in params),
            *(format_value(r.metrics.get(m, math.nan)) for m in metrics),
        ]
        for i, r in enumerate(runs)
    ]
    return _table(header, rows)


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
        "runs": [{"run_id": r.run_id, "run_name": r.run_name} for r in runs],
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
    return _table(header, rows) + "\n(* = differs between the runs)"
