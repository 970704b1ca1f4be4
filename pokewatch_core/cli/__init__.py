"""The ``pokewatch`` command line: one module per command family, shared options in
``options``. Heavy imports happen inside commands so that ``pokewatch --help`` stays instant."""

from pokewatch_core.cli.commands import cli, main

__all__ = ["cli", "main"]
