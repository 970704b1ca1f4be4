"""The hook specifications of the ``pokewatch`` plugin system (docs/plugins.md).

A plugin is a module (or any object) with functions marked ``@pokewatch_core.hookimpl``
whose names are the hook names below. Installed plugins are found through the entry-point
group ``pokewatch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT_NAME = "pokewatch"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[[type[Any]], None]


@hookspec
def pokewatch_register_models(register: Register) -> None:
    """Register model classes: call ``register(ModelClass)`` once per subclass of ``Model``."""


@hookspec
def pokewatch_register_metrics(register: Register) -> None:
    """Register metric classes: call ``register(MetricClass)`` once per subclass of ``Metric``."""


@hookspec
def pokewatch_register_signal_policies(register: Register) -> None:
    """Register signal policies: call ``register(PolicyClass)`` per subclass of ``SignalPolicy``."""
