"""PokeWatch benchmarks, measured side by side in one run on this machine.

    uv run --group bench python benchmarks/run.py [--cards 20000] [--days 365] [--repeat 5]

1. Evaluation throughput: ``evaluate()`` (baseline moving average of 3 + threshold policy + the
   seven core metrics) against the same computation written the idiomatic pandas way and with
   polars, on a ``pokewatch sample-data`` panel, run after run in one process; the three must
   agree to 1e-9 relative. ``evaluate()`` with every default metric (signal quality and
   strategy included) runs in the same loop against the same references. Peak RSS of each
   (loading included) in a fresh process.
   1b. ``evaluate()`` with every default metric against the bare polars pipeline a user would
   write (``rolling_mean(3, min_samples=1).shift(1).over("card_id")``, the policy, numpy
   metrics) on the panel made dense, where that pipeline forecasts what the library does.
2. Start-up: ``pokewatch --help`` and ``import pokewatch_core`` against bare Python and
   ``import pandas``.
3. Overhead: ``pokewatch train`` on the embedded sample against a bare MLflow script logging
   the same run (params, metrics, three figures, a pyfunc model).
4. The logged pyfunc model's ``predict`` on 10 000 cards.
5. Training at scale: ``pokewatch train`` on the panel against reading it and ``evaluate()``
   with the same (default) components, each a fresh process; the time of each and peak RSS.
6. Sweep: ``pokewatch sweep`` over 24 combinations (window size x buy threshold) on the
   embedded sample against 24 ``pokewatch train`` processes, one per combination, each into its
   own store; every combination's metrics must be identical.

Not part of the test suite: it prints numbers, it asserts only that results agree.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
BIN = Path(sys.executable).parent
CORE_METRICS = [
    "rmse",
    "mape",
    "dataset_size",
    "coverage_rate",
    "buy_rate",
    "sell_rate",
    "hold_rate",
]
BUY, SELL = 0.10, 0.15
TIE = 1e-9  # the threshold policy's documented tie tolerance


def panel(cards: int, days: int) -> Path:
    path = DATA / f"panel_{cards}x{days}.parquet"
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        subprocess.run(
            [
                str(BIN / "pokewatch"),
                "sample-data",
                "--output",
                str(path),
                "--cards",
                str(cards),
                "--days",
                str(days),
            ],
            check=True,
        )
    return path


def dense_panel(cards: int, days: int) -> Path:
    """``panel(cards, days)`` made dense: every card priced on every date, a missing day or
    price carrying the card's last price (the first day's, if missing, the next one's)."""
    path = DATA / f"panel_{cards}x{days}_dense.parquet"
    if not path.exists():
        raw = pd.read_parquet(panel(cards, days), columns=["card_id", "date", "market_price"])
        wide = raw.pivot(index="date", columns="card_id", values="market_price")
        dates = pd.date_range(wide.index.min(), wide.index.max(), freq="D")
        wide = wide.reindex(dates).ffill().bfill()
        ids = wide.columns.astype(str)
        out = pd.DataFrame(
            {
                "card_id": pd.Categorical(np.repeat(ids, len(dates)), categories=ids),
                "date": np.tile(dates.values.astype("datetime64[ns]"), len(ids)),
                "market_price": wide.to_numpy().T.ravel(),
            }
        )
        out.to_parquet(path, index=False)
    return path


# --- the contenders -----------------------------------------------------------------------


def run_pokewatch(df: pd.DataFrame) -> dict[str, float]:
    from pokewatch_core import evaluate

    return evaluate("baseline_moving_average", df, metrics=CORE_METRICS).metrics


def run_pokewatch_all(df: pd.DataFrame) -> dict[str, float]:
    from pokewatch_core import evaluate

    return evaluate("baseline_moving_average", df).metrics


def _metrics(market: np.ndarray, pred: np.ndarray, signal: np.ndarray) -> dict[str, float]:
    scored = ~np.isnan(market) & ~np.isnan(pred)
    n = scored.sum()
    err = pred[scored] - market[scored]
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err) / market[scored]) * 100),
        "dataset_size": float(n),
        "coverage_rate": float(100 * n / (~np.isnan(market)).sum()),
        "buy_rate": float(100 * (signal[scored] == "BUY").sum() / n),
        "sell_rate": float(100 * (signal[scored] == "SELL").sum() / n),
        "hold_rate": float(100 * (signal[scored] == "HOLD").sum() / n),
    }


def run_pandas(df: pd.DataFrame) -> dict[str, float]:
    """Idiomatic pandas: the window mean over the observed prices as grouped shifts (newest
    first, the library's order of additions, so prices at exactly a threshold get the same
    signal), moved to the next row and forward-filled within the card."""
    full = df[["card_id", "date", "market_price"]].sort_values(["card_id", "date"])
    observed = full.dropna(subset=["market_price"])
    grouped = observed.groupby("card_id", observed=True, sort=False)["market_price"]
    total = observed["market_price"] + grouped.shift(1).fillna(0.0) + grouped.shift(2).fillna(0.0)
    incl = total / (grouped.cumcount() + 1).clip(upper=3)
    shifted = incl.reindex(full.index).groupby(full["card_id"], observed=True).shift(1)
    pred = shifted.groupby(full["card_id"], observed=True).ffill()
    deviation = (full["market_price"] - pred) / pred
    signal = np.select(
        [deviation <= -BUY + TIE, deviation >= SELL - TIE, deviation.notna()],
        ["BUY", "SELL", "HOLD"],
        default="",
    )
    return _metrics(full["market_price"].to_numpy(), pred.to_numpy(), signal)


def run_polars(df: Any) -> dict[str, float]:
    """Polars, without a join: the last three observed prices before each row are chained
    forward fills within the card; their mean adds newest first, like the library. Policy and
    metrics as expressions."""
    import polars as pl

    price = pl.col("market_price")
    seen_price = price.is_not_null()
    frame = (
        df.sort("card_id", "date")
        .with_columns(
            last1=price.shift(1).forward_fill().over("card_id"),
            seen=seen_price.cast(pl.Int32).cum_sum().shift(1, fill_value=0).over("card_id"),
        )
        .with_columns(
            last2=pl.when(seen_price).then(pl.col("last1")).shift(1).forward_fill().over("card_id")
        )
        .with_columns(
            last3=pl.when(seen_price).then(pl.col("last2")).shift(1).forward_fill().over("card_id")
        )
        .with_columns(
            pred=(pl.col("last1") + pl.col("last2").fill_null(0.0) + pl.col("last3").fill_null(0.0))
            / pl.col("seen").clip(upper_bound=3)
        )
        .with_columns(dev=(price - pl.col("pred")) / pl.col("pred"))
        .with_columns(
            signal=pl.when(pl.col("dev") <= -BUY + TIE)
            .then(pl.lit("BUY"))
            .when(pl.col("dev") >= SELL - TIE)
            .then(pl.lit("SELL"))
            .when(pl.col("dev").is_not_null())
            .then(pl.lit("HOLD"))
        )
    )
    scored = frame.filter(price.is_not_null() & pl.col("pred").is_not_null())
    err = pl.col("pred") - price
    n = scored.height
    out = scored.select(
        rmse=(err**2).mean().sqrt(),
        mape=(err.abs() / price).mean() * 100,
        buy=(pl.col("signal") == "BUY").sum(),
        sell=(pl.col("signal") == "SELL").sum(),
        hold=(pl.col("signal") == "HOLD").sum(),
    ).row(0, named=True)
    priced = frame.select(price.is_not_null().sum()).item()
    return {
        "rmse": out["rmse"],
        "mape": out["mape"],
        "dataset_size": float(n),
        "coverage_rate": 100 * n / priced,
        "buy_rate": 100 * out["buy"] / n,
        "sell_rate": 100 * out["sell"] / n,
        "hold_rate": 100 * out["hold"] / n,
    }


def run_polars_lean(df: Any) -> dict[str, float]:
    """The bare polars pipeline a user would write on a dense panel (every card priced every
    day, sorted): ``rolling_mean(3, min_samples=1).shift(1)`` over the card, the policy as an
    expression, the metrics in numpy. On a dense panel it forecasts what the library does (no
    unknown price to skip, no missing day)."""
    import polars as pl

    price = pl.col("market_price")
    pred = price.rolling_mean(3, min_samples=1).shift(1).over("card_id")
    frame = df.select(price, pred.alias("pred"))
    market = frame["market_price"].to_numpy()
    predicted = frame["pred"].to_numpy()
    with np.errstate(invalid="ignore"):
        deviation = (market - predicted) / predicted
    signal = np.select(
        [deviation <= -BUY + TIE, deviation >= SELL - TIE, ~np.isnan(deviation)],
        ["BUY", "SELL", "HOLD"],
        default="",
    )
    return _metrics(market, predicted, signal)


LEAN = {
    "  every default metric": (run_pokewatch_all, "pandas"),
    "polars (lean, dense)": (run_polars_lean, "polars"),
}
# ties at a threshold: a rolling sum adds in another order than the library's newest-first
# window, so a price exactly at a threshold may fall on the other side (a few rows in millions)
LEAN_RATE_TOLERANCE = 1e-4

CONTENDERS: dict[str, tuple[Callable[[Any], dict[str, float]], str]] = {
    "pokewatch evaluate()": (run_pokewatch, "pandas"),
    "  every default metric": (run_pokewatch_all, "pandas"),
    "pandas (idiomatic)": (run_pandas, "pandas"),
    "polars": (run_polars, "polars"),
}


def load(kind: str, path: Path) -> Any:
    if kind == "polars":
        import polars as pl

        return pl.read_parquet(path)
    return pd.read_parquet(path)


def peak_rss_child(name: str, path: str) -> None:
    """Child process: load the panel, run one contender, print peak RSS in MB."""
    function, kind = {**CONTENDERS, **LEAN}[name]
    function(load(kind, Path(path)))
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child started by a big
    # parent would report the parent's peak
    status = Path("/proc/self/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    print(peak_kb / 1024)


# --- measurements --------------------------------------------------------------------------


def throughput(
    path: Path,
    repeat: int,
    contenders: dict[str, tuple[Callable[[Any], dict[str, float]], str]] = CONTENDERS,
    reference_name: str = "pandas (idiomatic)",
    rate_tolerance: float = 0.0,
) -> list[tuple[str, float, float, float]]:
    frames = {kind: load(kind, path) for kind in ("pandas", "polars")}
    rows = len(frames["pandas"])
    results: dict[str, dict[str, float]] = {}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for name, (function, kind) in contenders.items():  # warm-up, and the answers
        results[name] = function(frames[kind])
    for _ in range(repeat):
        for name, (function, kind) in contenders.items():
            start = time.perf_counter()
            function(frames[kind])
            times[name].append(time.perf_counter() - start)
    reference = results[reference_name]
    for name, got in results.items():
        for metric, value in reference.items():  # the core metrics; the rest have no reference
            rates = metric.endswith("_rate") and metric != "coverage_rate"
            close = math.isclose(got[metric], value, rel_tol=1e-9) or (
                rates and abs(got[metric] - value) <= rate_tolerance
            )
            assert close, (name, metric, got[metric], value)
    out = []
    for name in contenders:
        rss = float(
            subprocess.run(
                [sys.executable, __file__, "--rss-child", name, str(path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[-1]
        )
        best = min(times[name])
        out.append((name, rows / best, statistics.median(times[name]), rss))
    return out


def best_time(command: list[str], runs: int = 7, env: dict[str, str] | None = None) -> float:
    best = math.inf
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        best = min(best, time.perf_counter() - start)
    return best


def startup() -> dict[str, float]:
    py = sys.executable
    return {
        "python -c pass": best_time([py, "-c", "pass"]),
        "import pandas": best_time([py, "-c", "import pandas"]),
        "import pokewatch_core": best_time([py, "-c", "import pokewatch_core"]),
        "pokewatch --help": best_time([str(BIN / "pokewatch"), "--help"]),
    }


def overhead(runs: int = 3) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = f"sqlite:///{tmp}/pokewatch.db", f"sqlite:///{tmp}/bare.db"
        train = [str(BIN / "pokewatch"), "train", "--tracking-uri", a]
        bare = [sys.executable, str(HERE / "bare_mlflow_run.py"), b]
        env = {**os.environ, "MLFLOW_LOGGING_LEVEL": "WARNING"}
        for command in (train, bare):  # create both stores first
            subprocess.run(command, check=True, capture_output=True, cwd=tmp, env=env)
        t_train, t_bare = math.inf, math.inf
        for _ in range(runs):
            t_train = min(t_train, best_time(train, 1, env))
            t_bare = min(t_bare, best_time(bare, 1, env))
        return t_train, t_bare


def pyfunc_predict(cards: int = 10_000, runs: int = 7) -> float:
    import mlflow

    from pokewatch_core import evaluate, generate_prices
    from pokewatch_core.tracking.log import log_evaluation

    data = generate_prices(cards=cards, days=20, seed=1)
    result = evaluate("baseline_moving_average", data, metrics=["rmse"])
    home = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # back home below: the folder is deleted
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logged = log_evaluation(result, tracking_uri=f"sqlite:///{tmp}/m.db")
        model = mlflow.pyfunc.load_model(logged.model_uri)
        requests = pd.DataFrame({"card_id": data["card_id"].astype(str).unique()})
        assert len(requests) == cards
        model.predict(requests)
        best = math.inf
        for _ in range(runs):
            start = time.perf_counter()
            answer = model.predict(requests)
            best = min(best, time.perf_counter() - start)
        assert answer["fair_price"].notna().all()
    os.chdir(home)
    return best


# Runs a command as its only child and prints that child's peak RSS in kB (a fresh process,
# so RUSAGE_CHILDREN holds this command's peak and no earlier one's).
PEAK_OF_CHILD = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _timed_peak(command: list[str], cwd: str) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of a command."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PEAK_OF_CHILD, *command],
        check=True,
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    return time.perf_counter() - start, int(out.stdout.split()[-1]) / 1024


EVALUATE_ONLY = """
import sys, pandas as pd
from pokewatch_core import evaluate
evaluate("baseline_moving_average", pd.read_parquet(sys.argv[1]))
"""


def train_at_scale(path: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        evaluate_only = _timed_peak([sys.executable, "-c", EVALUATE_ONLY, str(path)], tmp)
        train = [
            str(BIN / "pokewatch"),
            "train",
            "--data-path",
            str(path),
            "--tracking-uri",
            f"sqlite:///{tmp}/scale.db",
        ]
        return evaluate_only, _timed_peak(train, tmp)


SWEEP_WINDOWS = ("3", "5", "7", "14")
SWEEP_BUY = "0.05:0.30:0.05"  # six values


def sweep_vs_trainings() -> tuple[float, float, int]:
    """Seconds of one 24-combination sweep, of 24 trainings, and the combinations compared."""
    from mlflow.tracking import MlflowClient

    from pokewatch_core.sweeps.grid import parse_values

    buys = parse_values("buy_threshold_pct", SWEEP_BUY)
    env = {**os.environ, "MLFLOW_LOGGING_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp:
        sweep_uri = f"sqlite:///{tmp}/sweep.db"
        train_uri = f"sqlite:///{tmp}/train.db"
        for uri in (sweep_uri, train_uri):  # create both stores first
            subprocess.run(
                [str(BIN / "pokewatch"), "train", "--metric", "rmse", "--tracking-uri", uri],
                check=True,
                capture_output=True,
                cwd=tmp,
                env=env,
            )
        start = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "pokewatch"),
                "sweep",
                "-p",
                f"window_size={','.join(SWEEP_WINDOWS)}",
                "-p",
                f"buy_threshold_pct={SWEEP_BUY}",
                "--tracking-uri",
                sweep_uri,
                "--experiment-name",
                "bench",
            ],
            check=True,
            capture_output=True,
            cwd=tmp,
            env=env,
        )
        t_sweep = time.perf_counter() - start
        start = time.perf_counter()
        for window in SWEEP_WINDOWS:
            for buy in buys:
                subprocess.run(
                    [
                        str(BIN / "pokewatch"),
                        "train",
                        "-p",
                        f"window_size={window}",
                        "-p",
                        f"buy_threshold_pct={buy}",
                        "--tracking-uri",
                        train_uri,
                        "--experiment-name",
                        "bench",
                    ],
                    check=True,
                    capture_output=True,
                    cwd=tmp,
                    env=env,
                )
        t_train = time.perf_counter() - start

        def by_combination(uri: str, child: bool) -> dict[tuple[str, str], dict[str, float]]:
            client = MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name("bench")
            out = {}
            for run in client.search_runs([experiment.experiment_id], max_results=1000):
                if child != ("mlflow.parentRunId" in run.data.tags):
                    continue
                key = (run.data.params["window_size"], run.data.params["buy_threshold_pct"])
                out[key] = dict(run.data.metrics)
            return out

        swept, trained = by_combination(sweep_uri, True), by_combination(train_uri, False)
        assert swept.keys() == trained.keys() and len(swept) == 24, (swept.keys(), trained.keys())
        for key, metrics in trained.items():
            for name, value in metrics.items():
                other = swept[key][name]
                assert value == other or (math.isnan(value) and math.isnan(other)), (key, name)
    return t_sweep, t_train, len(swept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        peak_rss_child(*args.rss_child)
        return

    path = panel(args.cards, args.days)
    print(f"Panel: {args.cards:,} cards x {args.days} days ({path.name}); {os.cpu_count()} cores")
    print(
        "\n1. Evaluation (baseline MA3 + threshold + 7 core metrics), best of "
        f"{args.repeat} after a warm-up; metrics agree to 1e-9"
    )
    rows = throughput(path, args.repeat)
    rates = {name: rate for name, rate, _, _ in rows}
    print(f"   {'':22} {'rows/s':>12} {'median s':>9} {'peak RSS':>9}")
    for name, rate, median, rss in rows:
        print(f"   {name:22} {rate / 1e6:10.2f} M {median:9.3f} {rss:7.0f} MB")
    core, every = rates["pokewatch evaluate()"], rates["  every default metric"]
    for label, rate in (("7 core metrics", core), ("every default metric", every)):
        print(
            f"   pokewatch, {label}: {rate / rates['polars']:.2f}x polars, "
            f"{rate / rates['pandas (idiomatic)']:.2f}x pandas"
        )
    peak = max(rss for name, _, _, rss in rows if name.lstrip().startswith(("pokewatch", "every")))
    core_ok = core >= rates["polars"] and core >= 6 * rates["pandas (idiomatic)"]
    print(
        "   goals: core >= 1.0x polars and >= 6x pandas"
        f"{goal(core_ok)}; every default metric >= 1.0x polars{goal(every >= rates['polars'])}; "
        f"peak RSS < 1200 MB{goal(peak < 1200)}"
    )

    dense = dense_panel(args.cards, args.days)
    print(
        f"\n1b. Every default metric against the bare polars pipeline, on the panel made dense "
        f"({dense.name}), best of {args.repeat}; the core metrics agree (rates to "
        f"{LEAN_RATE_TOLERANCE} percentage points: ties at a threshold)"
    )
    lean = {
        name: (rate, rss)
        for name, rate, _, rss in throughput(
            dense, args.repeat, LEAN, "polars (lean, dense)", LEAN_RATE_TOLERANCE
        )
    }
    for name, (rate, rss) in lean.items():
        print(f"   {name:22} {rate / 1e6:10.2f} M {'':9} {rss:7.0f} MB")
    every_dense, lean_rate = lean["  every default metric"][0], lean["polars (lean, dense)"][0]
    dense_peak = lean["  every default metric"][1]
    print(
        f"   every default metric = {every_dense / lean_rate:.2f}x the lean polars pipeline "
        f"(goal >= 1.0x{goal(every_dense >= lean_rate)}); peak RSS {dense_peak:.0f} MB "
        f"(goal < 1200 MB{goal(dense_peak < 1200)})"
    )

    print("\n2. Start-up (best of 7)")
    s = startup()
    for name, seconds in s.items():
        print(f"   {name:22} {seconds:6.3f} s")
    print(
        f"   pokewatch --help = {s['pokewatch --help'] / s['python -c pass']:.1f}x bare python"
        f" (goal < 0.3 s{goal(s['pokewatch --help'] < 0.3)}); import pokewatch_core = "
        f"{s['import pokewatch_core'] / s['import pandas']:.2f}x import pandas (goal < 0.6 s"
        f"{goal(s['import pokewatch_core'] < 0.6)})"
    )

    print("\n3. Overhead of pokewatch train over a bare MLflow script (best of 3)")
    t_train, t_bare = overhead()
    print(
        f"   pokewatch train {t_train:.2f} s, bare MLflow {t_bare:.2f} s: "
        f"{t_train / t_bare:.2f}x (goal <= 1.3x{goal(t_train <= 1.3 * t_bare)})"
    )

    print("\n4. pyfunc predict on 10 000 cards (best of 7)")
    predict_ms = pyfunc_predict() * 1000
    print(f"   {predict_ms:.1f} ms (goal < 50 ms{goal(predict_ms < 50)})")

    print(f"\n5. Training at scale on the {args.cards:,} x {args.days} panel (fresh processes)")
    (t_eval, rss_eval), (t_train, rss_train) = train_at_scale(path)
    print(f"   read + evaluate()  {t_eval:6.1f} s  {rss_eval:6.0f} MB peak")
    print(f"   pokewatch train    {t_train:6.1f} s  {rss_train:6.0f} MB peak")
    print(
        f"   train - evaluate = {t_train - t_eval:.1f} s (goal <= 25 s"
        f"{goal(t_train - t_eval <= 25)}); train peak RSS {rss_train / 1024:.2f} GB (goal <= "
        f"2.5 GB{goal(rss_train <= 2.5 * 1024)})"
    )

    print("\n6. A 24-combination sweep vs 24 pokewatch train processes (embedded sample)")
    t_sweep, t_trainings, compared = sweep_vs_trainings()
    print(
        f"   sweep {t_sweep:.1f} s, 24 trainings {t_trainings:.1f} s: "
        f"{t_trainings / t_sweep:.1f}x faster (goal >= 8x{goal(t_trainings >= 8 * t_sweep)}); "
        "metrics identical for all "
        f"{compared} combinations"
    )


def goal(met: bool) -> str:
    """Nothing after a goal that was met; a loud word after one that was not."""
    return "" if met else ": MISSED"


if __name__ == "__main__":
    main()
