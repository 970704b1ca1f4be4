"""Entry point of the default plugins: registers the built-in components."""

from __future__ import annotations

from typing import Any

from pokewatch_core import hookimpl
from pokewatch_plugins import metrics, relative_metrics, signal_metrics
from pokewatch_plugins.baseline import BaselineMovingAverage
from pokewatch_plugins.threshold import ThresholdPolicy


@hookimpl
def pokewatch_register_models(register: Any) -> None:
    register(BaselineMovingAverage)


@hookimpl
def pokewatch_register_metrics(register: Any) -> None:
    for metric in (
        metrics.DEFAULT_METRICS + relative_metrics.RELATIVE_METRICS + signal_metrics.SIGNAL_METRICS
    ):
        register(metric)


@hookimpl
def pokewatch_register_signal_policies(register: Any) -> None:
    register(ThresholdPolicy)
