"""The ``pokewatch`` command line: the group and its entry point (``app``), the options the
commands share (``options``) and one module per command family: ``train`` (train, sweep),
``gate``, ``compare``, ``catalog`` (plugins, models, metrics, policies), ``data`` (features,
sample-data)."""

from pokewatch_core.cli import catalog, compare, data, gate, train  # noqa: F401  (the commands)
from pokewatch_core.cli.app import cli, main

__all__ = ["cli", "main"]
