"""PokeWatch's backtests, measured side by side in one run on this machine.

    uv run --group bench --group peers python benchmarks/backtest.py [--cards 20000]
        [--days 365] [--repeat 3] [--profile] [--only windows|every-date]

On benchmarks/run.py's ``pokewatch sample-data`` panel (built by its ``panel()``, cached in
benchmarks/.data):

1. Windows against the peers: ``evaluate(baseline_moving_average, horizon=7, windows=4,
   step=7, metrics=["rmse", "mae", "mape"])`` against statsforecast's ``cross_validation``
   (``WindowAverage(3)``, ``h=7, n_windows=4, step_size=7``, ``n_jobs=-1``: every core) then
   utilsforecast's ``evaluate`` (rmse, mae, mape per card and cutoff). On the panel made dense
   (each missing day or price carries the card's last price): statsforecast counts rows, not
   days, and does not skip missing prices, so only a dense panel gives both the same forecasts
   (tests/test_backtest_peers.py). The forecasts must agree to 1e-9 (max abs difference
   printed), and so must utilsforecast's per-card losses and the same from PokeWatch's
   forecasts frame.
2. Every date at horizon 7 (``evaluate(..., horizon=7)``, every default metric) against the
   one-step evaluation (``evaluate(...)``, every default metric) on the panel as generated;
   the time of each (best of ``--repeat``, one process) and the peak RSS of each in a fresh
   process (loading included).

``--profile`` prints where PokeWatch's windows run and horizon-7 run spend their time
(cProfile, the top functions by own time and by cumulative time).

Not part of the test suite: it prints numbers, it asserts only that results agree.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import dense_panel, goal, panel  # benchmarks/run.py: the same panels

MODEL = "baseline_moving_average"
WINDOW = 3
H, WINDOWS, STEP = 7, 4, 7
PEER_METRICS = ["rmse", "mae", "mape"]
NIXTLA = {"card_id": "unique_id", "date": "ds", "market_price": "y"}
KEY = ["card_id", "cutoff", "date"]
TOL = 1e-9


# --- 1. windows against statsforecast + utilsforecast ------------------------------------


def run_pokewatch_windows(df: pd.DataFrame) -> Any:
    from pokewatch_core import evaluate

    return evaluate(
        MODEL,
        df,
        params={"window_size": WINDOW},
        horizon=H,
        windows=WINDOWS,
        step=STEP,
        metrics=PEER_METRICS,
    )


def run_peers(nixtla: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """statsforecast's cross-validation on every core, then utilsforecast's losses."""
    from statsforecast import StatsForecast
    from statsforecast.models import WindowAverage
    from utilsforecast.evaluation import evaluate
    from utilsforecast.losses import mae, mape, rmse

    sf = StatsForecast(models=[WindowAverage(window_size=WINDOW)], freq="D", n_jobs=-1)
    cv = sf.cross_validation(df=nixtla, h=H, n_windows=WINDOWS, step_size=STEP)
    scores = evaluate(cv, metrics=[rmse, mae, mape])
    return cv, scores


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[[*KEY, "market_price", "predicted_price"]].copy()
    out["card_id"] = out["card_id"].astype(str)
    for column in ("cutoff", "date"):
        out[column] = pd.to_datetime(out[column]).astype("datetime64[ns]")
    return out


def compare_forecasts(result: Any, cv: pd.DataFrame, scores: pd.DataFrame) -> tuple[float, float]:
    """Max abs difference of the forecasts (rows matched by card, cutoff, date; every row on
    both sides) and of the per-(card, cutoff) losses (mape in percent on both sides)."""
    ours = _keyed(result.forecasts)
    theirs = _keyed(
        cv.rename(columns={v: k for k, v in NIXTLA.items()} | {"WindowAverage": "predicted_price"})
    )
    merged = ours.merge(theirs, on=KEY, how="outer", suffixes=("", "_peer"), indicator=True)
    assert len(ours) == len(theirs) == len(merged), (len(ours), len(theirs), len(merged))
    assert (merged["_merge"] == "both").all()
    forecast_diff = float(
        np.max(np.abs(merged["predicted_price"] - merged["predicted_price_peer"]))
    )

    err = ours["predicted_price"] - ours["market_price"]
    groups = [ours["card_id"], ours["cutoff"]]
    mine = pd.DataFrame(
        {
            "rmse": (err**2).groupby(groups).mean() ** 0.5,
            "mae": err.abs().groupby(groups).mean(),
            "mape": (err.abs() / ours["market_price"]).groupby(groups).mean() * 100,
        }
    )
    peer = scores.assign(
        unique_id=scores["unique_id"].astype(str),
        cutoff=pd.to_datetime(scores["cutoff"]).astype("datetime64[ns]"),
    ).pivot_table(index=["unique_id", "cutoff"], columns="metric", values="WindowAverage")
    peer["mape"] *= 100  # a fraction in utilsforecast, a percent in PokeWatch
    peer.index.names = ["card_id", "cutoff"]
    loss_diff = float(np.nanmax(np.abs(mine.loc[peer.index, PEER_METRICS] - peer[PEER_METRICS])))
    return forecast_diff, loss_diff


def best_of(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, answer = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        answer = function()
        best = min(best, time.perf_counter() - start)
    return best, answer


# --- 2. every date at horizon 7 against the one-step evaluation ---------------------------


def run_one_step(df: pd.DataFrame) -> Any:
    from pokewatch_core import evaluate

    return evaluate(MODEL, df)


def run_horizon(df: pd.DataFrame) -> Any:
    from pokewatch_core import evaluate

    return evaluate(MODEL, df, horizon=H)


MODES: dict[str, Callable[[pd.DataFrame], Any]] = {
    "one-step": run_one_step,
    "horizon-7": run_horizon,
    "windows": run_pokewatch_windows,
}


def peak_rss_child(mode: str, path: str) -> None:
    """Child process: load the panel, run one mode, print peak RSS in MB (VmHWM, as
    benchmarks/run.py: ru_maxrss would carry the parent's peak across exec)."""
    MODES[mode](pd.read_parquet(path))
    status = Path("/proc/self/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    print(peak_kb / 1024)


def peak_rss(mode: str, path: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.split()[-1])


def profile(function: Callable[[pd.DataFrame], Any], df: pd.DataFrame, top: int = 20) -> str:
    """The top functions of one run of ``function(df)``, by own and by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    function(df)
    profiler.disable()
    out = io.StringIO()
    for order in ("tottime", "cumulative"):
        out.write(f"\n   --- by {order} ---\n")
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the windows and horizon-7 runs"
    )
    parser.add_argument(
        "--only", choices=["windows", "every-date"], help="run one of the two measurements"
    )
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        peak_rss_child(*args.rss_child)
        return

    path = panel(args.cards, args.days)
    dense = dense_panel(args.cards, args.days)
    print(f"Panel: {args.cards:,} cards x {args.days} days ({path.name}); {os.cpu_count()} cores")

    if args.only != "every-date":
        windows_vs_peers(dense, args.repeat, args.profile)
    if args.only != "windows":
        every_date_vs_one_step(path, args.repeat, args.profile)


def windows_vs_peers(dense: Path, repeat: int, profiled: bool) -> None:
    df = pd.read_parquet(dense)
    print(
        f"\n1. Windows (h={H}, n_windows={WINDOWS}, step={STEP}, moving average of {WINDOW}; "
        f"rmse, mae, mape) on the dense panel ({len(df):,} rows), best of {repeat}"
    )
    nixtla = df.rename(columns=NIXTLA)
    run_peers(nixtla.head(H * 40))  # warm-up: imports, worker start-up code paths
    t_ours, result = best_of(lambda: run_pokewatch_windows(df), repeat)
    t_peers, (cv, scores) = best_of(lambda: run_peers(nixtla), repeat)
    forecast_diff, loss_diff = compare_forecasts(result, cv, scores)
    ratio = t_peers / t_ours
    agree = max(forecast_diff, loss_diff) <= TOL
    print(f"   pokewatch evaluate()                      {t_ours:8.2f} s")
    print(f"   statsforecast cross_validation + evaluate {t_peers:8.2f} s  (n_jobs=-1)")
    print(
        f"   {len(cv):,} forecasts identical: max abs difference {forecast_diff:.2e} "
        f"(losses per card and cutoff {loss_diff:.2e}){goal(agree)}"
    )
    print(f"   pokewatch {ratio:.2f}x as fast (goal >= 10x{goal(ratio >= 10)})")
    if profiled:
        print("\n   cProfile of the pokewatch windows run:")
        print(profile(run_pokewatch_windows, df))


def every_date_vs_one_step(path: Path, repeat: int, profiled: bool) -> None:
    df = pd.read_parquet(path)
    print(
        f"\n2. Every date at horizon {H} vs one step (every default metric) on the panel as "
        f"generated ({len(df):,} rows), best of {repeat}; peak RSS in a fresh process"
    )
    t_one, _ = best_of(lambda: run_one_step(df), repeat)
    t_h, _ = best_of(lambda: run_horizon(df), repeat)
    rss_one, rss_h = peak_rss("one-step", path), peak_rss("horizon-7", path)
    print(f"   one step      {t_one:8.2f} s  {rss_one:7.0f} MB peak")
    print(f"   horizon {H}     {t_h:8.2f} s  {rss_h:7.0f} MB peak")
    slower = t_h / t_one
    print(
        f"   horizon {H} = {slower:.1f}x the one-step time (goal <= 8x{goal(slower <= 8)}); "
        f"peak RSS {rss_h / 1024:.2f} GB (goal <= 3 GB{goal(rss_h <= 3 * 1024)})"
    )
    if profiled:
        print(f"\n   cProfile of the horizon-{H} run:")
        print(profile(run_horizon, df))


if __name__ == "__main__":
    main()
