"""The defaults a user gets by not choosing: the one place that names default components.

The core otherwise knows components only through their classes' metadata (``kind``,
``Metric.unit``, ``Metric.greater_is_better``, ``Model.artifact_name``, metric states).
"""

from __future__ import annotations

DEFAULT_MODEL = "baseline_moving_average"
DEFAULT_POLICY = "threshold"
DEFAULT_EXPERIMENT = "pokewatch_baseline"
DEFAULT_SWEEP_METRIC = "rmse"  # what picks a sweep's best combination
COMPARE_METRICS = ("rmse", "mape", "coverage_rate", "strategy_total_return")
"""The metric columns of ``pokewatch compare`` when none is asked for."""
SUMMARY_SHARPE = ("strategy_sharpe", "periods_per_year")
"""The metric whose annualisation the summary's strategy line follows, and its parameter."""
