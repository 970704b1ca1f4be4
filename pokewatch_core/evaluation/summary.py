"""Human-readable summaries of an evaluation (terminal and ``evaluation_summary.txt``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pokewatch_core.components import SIGNALS
from pokewatch_core.defaults import SUMMARY_SHARPE

if TYPE_CHECKING:
    from pokewatch_core.evaluation.runner import EvaluationResult


def format_value(value: Any) -> str:
    """A metric or parameter value as short text."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def format_metric(value: float, unit: str) -> str:
    """A metric value as text in its unit: a percent is shown with ``%``, a fraction or a ratio
    as a plain number (never multiplied by 100), a count as a whole number."""
    text = format_value(value)
    if unit == "percent" and text != "nan":
        return f"{text} %"
    return text


def metric_units(result: EvaluationResult) -> dict[str, str]:
    """The unit of each metric of ``result``."""
    return {name: metric.unit for name, metric in result.metric_components.items()}


def metrics_table(metrics: dict[str, float], units: dict[str, str] | None = None) -> str:
    """Metrics as aligned ``name  value  unit`` lines (``units``: name -> unit)."""
    units = units or {}
    width = max((len(n) for n in metrics), default=0)
    cells = {name: format_metric(v, units.get(name, "")) for name, v in metrics.items()}
    value_width = max((len(c) for c in cells.values()), default=0)
    return "\n".join(
        f"  {name:<{width}}  {cells[name]:>{value_width}}  {units.get(name, '')}".rstrip()
        for name in metrics
    )


def data_overview(result: EvaluationResult) -> dict[str, str]:
    """Counts that tell what was evaluated: rows, cards, dates, missing prices."""
    seen = result.analyses.overview
    span = seen.date_range()
    overview = {
        "rows": f"{seen.rows:,}",
        "cards": f"{seen.cards:,}",
        "dates": f"{span[0].date()} to {span[1].date()}" if span else "none",
        "missing prices": f"{seen.no_price:,} rows (not scored)",
        "scored rows": f"{seen.scored:,}",
        "no prediction": f"{seen.no_prediction:,} priced rows",
    }
    if result.test_start is not None:
        overview["test period"] = (
            f"from {result.test_start.date()} ({seen.scored_period_rows:,} rows)"
        )
    return overview


def pooled_metrics(result: EvaluationResult) -> dict[str, float]:
    """The metrics without their per-horizon keys (a backtest's are pooled over horizons)."""
    return {name: result.metrics[name] for name in result.metric_components}


def backtest_section(result: EvaluationResult) -> str:
    """A backtest's cutoffs and its metrics by horizon (one column per horizon)."""
    figures = result.backtest
    assert figures is not None
    cutoffs = figures.cutoffs
    first, last = cutoffs.dates()[[0, -1]]
    step = f", {cutoffs.step} periods apart" if cutoffs.step is not None else ""
    size = cutoffs.input_size
    window = "expanding" if size is None else f"sliding, {size} periods"
    head = [
        f"Backtest: horizon {cutoffs.horizon} ({cutoffs.calendar.describe()} data), "
        f"{len(cutoffs.periods)} cutoffs ({cutoffs.mode}{step}) from {first.date()} to "
        f"{last.date()}, refit {result.params.get('refit')}, training window {window}",
    ]
    if cutoffs.horizon == 1:
        return "\n".join(head)
    horizons = list(figures.by_horizon)
    names = list(result.metric_components)
    width = max(len(n) for n in names) if names else 0
    cells = {name: [format_value(figures.by_horizon[h][name]) for h in horizons] for name in names}
    column = max([len(f"h{h}") for h in horizons] + [len(c) for row in cells.values() for c in row])
    header = f"  {'metric':<{width}}  " + "  ".join(f"{'h' + str(h):>{column}}" for h in horizons)
    rows = [
        f"  {name:<{width}}  " + "  ".join(f"{cell:>{column}}" for cell in cells[name])
        for name in names
    ]
    return "\n".join([*head, "Metrics by horizon (logged as <metric>_h<h>)", header, *rows])


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items()) or "no parameters"


def evaluation_summary(result: EvaluationResult, source: str = "data") -> str:
    """The full text summary logged as ``summary/evaluation_summary.txt``."""
    counts = result.analyses.signal_counts
    signal_line = ", ".join(f"{s} {n:,}" for s, n in zip(SIGNALS, counts, strict=True))
    lines = [
        "PokeWatch evaluation summary",
        "============================",
        f"model:  {result.model.name} ({_params_text(result.model_params)})",
        f"policy: {result.policy.name} ({_params_text(result.policy_params)})",
        f"data:   {source}",
    ]
    lines += [f"  {k}: {v}" for k, v in data_overview(result).items()]
    lines += ["", "Metrics", metrics_table(pooled_metrics(result), metric_units(result))]
    if result.backtest is not None:
        lines += ["", backtest_section(result)]
    lines += ["", f"Signals: {signal_line}"]
    lines += ["", signal_quality_section(result)]
    return "\n".join(lines) + "\n"


def signal_quality_section(result: EvaluationResult) -> str:
    """Do the signals make money? Precision and forward returns, strategy vs buy and hold.
    Shares and returns are fractions (0.05 = 5 %)."""
    quality = result.analyses.signal_quality
    run = result.analyses.backtest
    fee = run.fee_pct
    hold = float(run.buy_and_hold_equity[-1] - 1.0) if len(run.dates) else float("nan")
    # the Sharpe ratio as the metric gives it: its periods_per_year when set
    metric, param = SUMMARY_SHARPE
    given = getattr(result.metric_components.get(metric), param, None)
    periods = run.periods_per_year if given is None else float(given)
    source = "from the dates" if given is None else f"the metric's {param}"
    ahead = f"{quality.horizon} observation{'s' if quality.horizon != 1 else ''} ahead"

    def signed(value: float) -> str:
        return "nan" if math.isnan(value) else f"{value:+.4f}"

    def share(value: float) -> str:
        return "nan" if math.isnan(value) else f"{value:.3f}"

    return "\n".join(
        [
            f"Signal quality ({ahead}; shares and returns are fractions)",
            f"  BUY:  precision {share(quality.buy_precision)}, recall "
            f"{share(quality.buy_recall)}, lift {format_value(quality.buy_lift)}, mean forward "
            f"return {signed(quality.mean_forward_return_buy)}",
            f"  SELL: precision {share(quality.sell_precision)}, recall "
            f"{share(quality.sell_recall)}, lift {format_value(quality.sell_lift)}, mean forward "
            f"return {signed(quality.mean_forward_return_sell)}",
            f"  strategy (long on BUY, flat on SELL, fee {fee:g}): total return "
            f"{signed(run.total_return)}, Sharpe {format_value(run.sharpe_at(periods))} "
            f"({format_value(periods)} periods a year, {source}), max drawdown "
            f"{share(run.max_drawdown)}; buy and hold {signed(hold)}",
        ]
    )
