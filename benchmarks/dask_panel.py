"""The dask engine at a size one process cannot hold, and against the local engine.

    uv run --extra dask python benchmarks/dask_panel.py [--cards 300000] [--days 365]
        [--memory-limit 1.5GiB] [--partitions 128] [--compare-cards 20000] [--folder PATH]
        [--horizon 7]

1. Builds a panel on disk: ``--cards`` cards x ``--days`` days (300 000 x 365 = 109.5 M rows)
   as a folder of parquet files, one per month of dates (the layout of daily snapshots: every
   file holds every card, so the engine really routes rows between partitions). It is written
   a month at a time, carrying only each card's last price, so the builder stays small.
2. Evaluates it (baseline moving average of 3, threshold policy, every default metric that
   declares a mergeable state) on a ``LocalCluster`` of ``--workers`` processes with
   ``--memory-limit`` each, and reports rows/s and the peak RSS of each worker (from the
   worker process itself, ``ru_maxrss``).
3. Measures the local engine's peak RSS per row on a panel it can hold (``--compare-cards``
   cards, same days) in a fresh process, so the memory the local engine would need for the big
   panel is that per-row figure times its rows; and runs both engines on that smaller panel
   for the time ratio (their metrics must agree to 1e-9 relative).

``--horizon H`` makes every evaluation a backtest at every date at horizon H (H forecasts of
each row, every metric per horizon and per cutoff; docs/backtests.md), and prints whether each
worker kept within ``--memory-limit``.

Not part of the test suite: it prints numbers, it asserts only that results agree.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MODEL = "baseline_moving_average"


def build(folder: Path, cards: int, days: int, seed: int = 16) -> int:
    """Write the panel to ``folder``: one parquet file per month of dates; returns rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = pa.array([f"card-{c:07d}" for c in range(cards)], type=pa.string())
    level = np.exp(rng.normal(0.0, 1.5, cards))  # cents to hundreds of dollars
    vol = rng.uniform(0.01, 0.04, cards)
    dates = pd.date_range("2025-01-01", periods=days, freq="D")
    months = dates.to_period("M")
    rows = 0
    for month in months.unique():
        in_month = dates[months == month]
        n_days = len(in_month)
        steps = rng.normal(0.0, 1.0, (n_days, cards)) * vol
        walk = level * np.exp(np.cumsum(steps, axis=0))
        level = walk[-1]
        price = np.maximum(np.round(walk, 2), 0.01).ravel()  # whole cents, never zero
        price[rng.random(price.size) < 0.005] = np.nan  # a few unknown prices
        table = pa.table(
            {
                "card_id": pa.concat_arrays([ids] * n_days),
                "date": pa.array(np.repeat(in_month.values, cards)),
                "market_price": pa.array(price),
            }
        )
        pq.write_table(table, folder / f"prices-{month}.parquet", row_group_size=1 << 20)
        rows += table.num_rows
        del table, walk, steps, price
    return rows


def stateful_metrics() -> list[str]:
    from pokewatch_core import get_plugins

    names = get_plugins().metrics.names()
    return [n for n in names if get_plugins().metrics.get(n)().statistic() is not None]


def run_local(data: Path, horizon: int = 1) -> dict[str, Any]:
    """In this (fresh) process: read and evaluate with the local engine; time and peak RSS."""
    from pokewatch_core import evaluate

    files = sorted(data.glob("*.parquet"))
    import pokewatch_core.evaluation.runner  # noqa: F401  (imports counted in the base)

    base = _peak_rss()  # the interpreter and its imports, before any data
    start = time.perf_counter()
    table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    result = evaluate(MODEL, table, metrics=stateful_metrics(), horizon=horizon)
    seconds = time.perf_counter() - start
    rows, peak = len(table), _peak_rss()
    return {"seconds": seconds, "peak_bytes": peak, "base_bytes": base, "rows": rows,
            "metrics": result.metrics}  # fmt: skip


def local_in_fresh_process(data: Path, horizon: int = 1) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--local-only", str(data), "--horizon", str(horizon)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _peak_rss() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_dask(
    data: Path,
    out: Path,
    workers: int,
    memory_limit: str,
    partitions: int | None,
    horizon: int = 1,
) -> dict[str, Any]:
    """Evaluate on a LocalCluster started here; time (cluster start excluded), peak RSS of
    each worker process."""
    from distributed import Client, LocalCluster

    from pokewatch_core.engines.dask_engine import evaluate_on_dask
    from pokewatch_core.evaluation.cutoffs import BacktestOptions
    from pokewatch_core.evaluation.spec import EvaluationSpec

    options = BacktestOptions(horizon=horizon)
    spec = EvaluationSpec.build(MODEL, metrics=stateful_metrics(), backtest=options)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=memory_limit,
            silence_logs=40,
        ) as cluster,
        Client(cluster) as client,
    ):
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        stages: list[tuple[float, str]] = []
        result = evaluate_on_dask(
            str(data),
            spec,
            output_dir=out,
            scheduler=cluster.scheduler_address,
            partitions=partitions,
            progress=lambda s: stages.append((time.perf_counter() - start, s)),
        )
        seconds = time.perf_counter() - start
        peaks = client.run(_peak_rss)
    routed = next((t for t, s in stages if s.startswith("evaluated partition")), seconds)
    return {
        "seconds": seconds,
        "routing_seconds": next((t for t, s in stages if s.startswith("routing")), 0.0),
        "first_partition_seconds": routed,
        "rows": result.rows,
        "partitions": result.partitions,
        "worker_peak_bytes": sorted(peaks.values()),
        "metrics": result.metrics,
    }


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(
        (math.isnan(a[k]) and math.isnan(b[k]))
        or math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12)
        for k in a
    )


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--compare-cards", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1.5GiB")
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--folder", type=Path, default=None, help="where to build (kept)")
    parser.add_argument("--horizon", type=int, default=1, help="backtest at every date")
    parser.add_argument("--local-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.local_only:
        print(json.dumps(run_local(args.local_only, args.horizon)))
        return

    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    root = args.folder or Path(tempfile.mkdtemp(prefix="pokewatch-dask-bench-"))
    small, big = root / f"panel-{args.compare_cards}", root / f"panel-{args.cards}"
    print(f"building {args.compare_cards} and {args.cards} cards x {args.days} days in {root}")
    for folder, cards in ((small, args.compare_cards), (big, args.cards)):
        if not folder.exists():
            t = time.perf_counter()
            rows = build(folder, cards, args.days)
            print(f"  {folder.name}: {rows} rows in {time.perf_counter() - t:.0f} s")

    at = "" if args.horizon == 1 else f", every date at horizon {args.horizon}"
    print(f"\n1. both engines on the panel both can hold{at}")
    local = local_in_fresh_process(small, args.horizon)
    per_row = (local["peak_bytes"] - local["base_bytes"]) / local["rows"]
    remote = run_dask(
        small, root / "frame-small", args.workers, args.memory_limit, None, args.horizon
    )
    assert same(local["metrics"], remote["metrics"]), "the engines disagree"
    print(
        f"  {local['rows']} rows: local {local['seconds']:.1f} s "
        f"({local['rows'] / local['seconds'] / 1e6:.2f} M rows/s, peak {gib(local['peak_bytes'])}, "
        f"{per_row:.0f} bytes a row over the interpreter's {gib(local['base_bytes'])}); "
        f"dask {remote['seconds']:.1f} s "
        f"({remote['rows'] / remote['seconds'] / 1e6:.2f} M rows/s, {remote['partitions']} "
        f"partitions); dask / local time {remote['seconds'] / local['seconds']:.2f}; "
        "metrics agree to 1e-9"
    )

    print(f"\n2. dask on the big panel, {args.workers} workers x {args.memory_limit}{at}")
    result = run_dask(
        big, root / "frame-big", args.workers, args.memory_limit, args.partitions, args.horizon
    )
    needed = local["base_bytes"] + per_row * result["rows"]
    print(
        f"  {result['rows']} rows in {result['seconds']:.0f} s "
        f"({result['rows'] / result['seconds'] / 1e6:.2f} M rows/s; routing "
        f"{result['first_partition_seconds'] - result['routing_seconds']:.0f} s of it), "
        f"{result['partitions']} partitions"
    )
    print(
        "  peak RSS per worker: "
        + ", ".join(gib(b) for b in result["worker_peak_bytes"])
        + f" (limit {args.memory_limit}); the local engine would need about {gib(needed)} "
        f"({per_row:.0f} bytes a row x {result['rows']} rows)"
    )
    from dask.utils import parse_bytes

    within = max(result["worker_peak_bytes"]) <= parse_bytes(args.memory_limit)
    print(f"  every worker within its memory limit: {'yes' if within else 'no: MISSED'}")
    print(json.dumps({"small": {"local": local, "dask": remote}, "big": result}, default=str))
    if args.folder is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
