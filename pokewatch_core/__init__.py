"""PokeWatch core: evaluate trading-card price models and record the runs in MLflow.

Light names (hook markers, base classes, plugin access) are imported eagerly; the ones that
need pandas load on first use, so ``import pokewatch_core`` stays fast.
"""

from __future__ import annotations

# first: under `python -m pokewatch_core`, drop the working directory from sys.path before
# anything else is imported (see the module)
from pokewatch_core import working_directory  # noqa: F401  isort: skip

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pokewatch_core.columns import (
    CUTOFF,
    DATE,
    HORIZON,
    ID,
    NAIVE,
    PREDICTED,
    PRICE,
    SIGNAL,
    WINDOW_START,
)
from pokewatch_core.components import SIGNALS, UNITS, Metric, Model, ParamSpec, SignalPolicy
from pokewatch_core.errors import (
    ConfigError,
    DataError,
    PluginError,
    PokeWatchError,
    TrackingError,
)
from pokewatch_core.hookspecs import hookimpl, hookspec
from pokewatch_core.plugins.registry import (
    get_plugins,
    register_plugin,
    reload_plugins,
    unregister_plugin,
)
from pokewatch_core.statistics import MetricValue, Statistic, Sums, group_rows, group_sums
from pokewatch_core.version import __version__

if TYPE_CHECKING:
    from pokewatch_core.analysis.quality import Quality, QualityState, quality_state, signal_quality
    from pokewatch_core.analysis.strategy import Strategy, StrategyState, backtest, strategy_state
    from pokewatch_core.data.naive import NaiveBaseline, NaiveForecast, NaiveSums
    from pokewatch_core.data.price_index import PriceIndex
    from pokewatch_core.data.sample_data import embedded_sample_path, generate_prices
    from pokewatch_core.data.tables import load_prices, prepare_prices, read_table
    from pokewatch_core.engines.base import Engine
    from pokewatch_core.engines.front_door import EngineOptions, evaluate
    from pokewatch_core.evaluation.runner import EvaluationResult, score_predictions
    from pokewatch_core.evaluation.spec import EvaluationSpec
    from pokewatch_core.sweeps.plan import SweepResult
    from pokewatch_core.tracking.evaluator import mlflow_metrics
    from pokewatch_core.tracking.log import log_evaluation
    from pokewatch_core.tracking.sweep import run_sweep

_LAZY = {
    "Engine": "pokewatch_core.engines.base",
    "EngineOptions": "pokewatch_core.engines.front_door",
    "EvaluationSpec": "pokewatch_core.evaluation.spec",
    "evaluate": "pokewatch_core.engines.front_door",
    "score_predictions": "pokewatch_core.evaluation.runner",
    "run_sweep": "pokewatch_core.tracking.sweep",
    "SweepResult": "pokewatch_core.sweeps.plan",
    "mlflow_metrics": "pokewatch_core.tracking.evaluator",
    "EvaluationResult": "pokewatch_core.evaluation.runner",
    "load_prices": "pokewatch_core.data.tables",
    "NaiveBaseline": "pokewatch_core.data.naive",
    "NaiveSums": "pokewatch_core.data.naive",
    "NaiveForecast": "pokewatch_core.data.naive",
    "prepare_prices": "pokewatch_core.data.tables",
    "read_table": "pokewatch_core.data.tables",
    "PriceIndex": "pokewatch_core.data.price_index",
    "backtest": "pokewatch_core.analysis.strategy",
    "Quality": "pokewatch_core.analysis.quality",
    "QualityState": "pokewatch_core.analysis.quality",
    "Strategy": "pokewatch_core.analysis.strategy",
    "StrategyState": "pokewatch_core.analysis.strategy",
    "quality_state": "pokewatch_core.analysis.quality",
    "strategy_state": "pokewatch_core.analysis.strategy",
    "signal_quality": "pokewatch_core.analysis.quality",
    "generate_prices": "pokewatch_core.data.sample_data",
    "log_evaluation": "pokewatch_core.tracking.log",
    "embedded_sample_path": "pokewatch_core.data.sample_data",
}

__all__ = [
    "CUTOFF",
    "DATE",
    "HORIZON",
    "ID",
    "NAIVE",
    "PREDICTED",
    "PRICE",
    "SIGNAL",
    "SIGNALS",
    "UNITS",
    "WINDOW_START",
    "ConfigError",
    "DataError",
    "Engine",
    "EngineOptions",
    "EvaluationResult",
    "EvaluationSpec",
    "Metric",
    "MetricValue",
    "Model",
    "NaiveBaseline",
    "NaiveForecast",
    "NaiveSums",
    "ParamSpec",
    "PluginError",
    "PokeWatchError",
    "PriceIndex",
    "Quality",
    "QualityState",
    "SignalPolicy",
    "Statistic",
    "Strategy",
    "StrategyState",
    "Sums",
    "SweepResult",
    "TrackingError",
    "__version__",
    "backtest",
    "embedded_sample_path",
    "evaluate",
    "generate_prices",
    "get_plugins",
    "group_rows",
    "group_sums",
    "hookimpl",
    "hookspec",
    "load_prices",
    "log_evaluation",
    "mlflow_metrics",
    "prepare_prices",
    "quality_state",
    "read_table",
    "register_plugin",
    "reload_plugins",
    "run_sweep",
    "score_predictions",
    "signal_quality",
    "strategy_state",
    "unregister_plugin",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pokewatch_core' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
