"""The evaluation plots logged with every run (matplotlib, headless)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pokewatch_core.components import SIGNALS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from pokewatch_core.evaluation.runner import EvaluationResult

SCATTER_POINTS = 20_000  # more points add nothing visible and cost seconds


def _figure() -> tuple[Figure, Any]:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    fig = Figure(figsize=(7, 5), dpi=100)
    return fig, fig.add_subplot()


def evaluation_figures(result: EvaluationResult) -> dict[str, Figure]:
    """The three plots, by artifact path (``plots/…png``)."""
    market, predicted = result.price_pairs()  # a bounded sample if the frame is on disk
    title = f"{result.model.name}"

    fig_err, ax = _figure()
    errors = predicted - market
    outside = 0
    if len(errors):
        # a few huge errors (a grail card's spike) would squeeze the rest into one bar: the
        # axis spans the 1st to 99th percentile, and the title says how many fall outside
        low, high = (float(v) for v in np.percentile(errors, [1, 99]))
        if high <= low:
            low, high = float(errors.min()), float(errors.max())
        shown = errors[(errors >= low) & (errors <= high)]
        outside = len(errors) - len(shown)
        # errors that differ by rounding only (a steady price rise) cannot fill 60 bins
        spread = float(np.ptp(shown))
        wide = spread > 1e-9 * max(1.0, float(np.abs(shown).max()))
        ax.hist(shown, bins=60 if wide else 1, color="#4c72b0")
    ax.axvline(0.0, color="black", linewidth=1)
    note = f" ({outside:,} rows outside the 1st-99th percentile not shown)" if outside else ""
    ax.set(
        title=f"Prediction error, {title}{note}",
        xlabel="predicted - market price (the data's currency)",
        ylabel="rows",
    )

    fig_sc, ax = _figure()
    if len(market) > SCATTER_POINTS:
        pick = np.random.default_rng(0).choice(len(market), SCATTER_POINTS, replace=False)
        market_s, predicted_s = market[pick], predicted[pick]
    else:
        market_s, predicted_s = market, predicted
    ax.scatter(market_s, predicted_s, s=4, alpha=0.4, color="#4c72b0")
    if len(market):
        low, high = (
            float(min(market.min(), predicted.min())),
            float(max(market.max(), predicted.max())),
        )
        ax.plot([low, high], [low, high], color="black", linewidth=1, label="perfect")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend()
    ax.set(
        title=f"Market vs predicted price, {title}",
        xlabel="market price",
        ylabel="predicted price",
    )

    fig_sig, ax = _figure()
    counts = result.analyses.signal_counts
    bars = ax.bar(list(SIGNALS), counts, color=["#55a868", "#c44e52", "#8c8c8c"])
    ax.bar_label(bars)
    ax.set(title=f"Signals, {result.policy.name} policy", ylabel="rows")

    figures = {
        "plots/error_distribution.png": fig_err,
        "plots/scatter_true_vs_predicted.png": fig_sc,
        "plots/signal_distribution.png": fig_sig,
        "plots/strategy_equity_curve.png": equity_figure(result),
    }
    if result.backtest is not None and result.backtest.cutoffs.horizon > 1:
        figures[HORIZON_PLOT] = horizon_figure(result)
    return figures


HORIZON_PLOT = "plots/error_by_horizon.png"


def horizon_figure(result: EvaluationResult) -> Figure:
    """How the error grows with the horizon: each error metric (smaller is better) of the
    run against the horizon, one panel per unit."""
    figures = result.backtest
    assert figures is not None
    errors = {
        name: metric.unit
        for name, metric in result.metric_components.items()
        if metric.greater_is_better is False and metric.unit in {"price", "percent", "ratio"}
    }
    from matplotlib.figure import Figure

    units = sorted(set(errors.values()), key=["price", "percent", "ratio"].index)
    fig = Figure(figsize=(5 * max(len(units), 1), 4), dpi=100)
    panels = list(np.atleast_1d(fig.subplots(1, max(len(units), 1))))
    horizons = list(figures.by_horizon)
    for ax, unit in zip(panels, units, strict=False):
        for name, metric_unit in errors.items():
            if metric_unit == unit:
                values = [figures.by_horizon[h][name] for h in horizons]
                ax.plot(horizons, values, marker="o", label=name)
        ax.set(xlabel=f"horizon ({figures.cutoffs.calendar.period_name(1)} per step)", ylabel=unit)
        ax.set_xticks(horizons)
        ax.legend()
    panels[0].set_title(f"Error by horizon, {result.model.name}")
    fig.tight_layout()
    return fig


def equity_figure(result: EvaluationResult) -> Figure:
    """The long-only strategy's equity against buy-and-hold of all cards."""
    run = result.analyses.backtest
    fee = run.fee_pct
    fig, ax = _figure()
    if len(run.dates):
        ax.plot(run.dates, run.equity, label=f"strategy (fee {fee:g})", color="#4c72b0")
        ax.plot(
            run.dates, run.buy_and_hold_equity, label="buy and hold, all cards", color="#8c8c8c"
        )
        ax.legend()
        fig.autofmt_xdate()
    ax.axhline(1.0, color="black", linewidth=0.5)
    ax.set(title=f"Long-only strategy on {result.policy.name} signals", ylabel="equity (start = 1)")
    return fig
