"""Exception types; the CLI maps them to exit codes (README, exit codes)."""

from __future__ import annotations


class PokeWatchError(Exception):
    """Base class of every error PokeWatch raises on purpose (CLI exit code 1)."""

    exit_code = 1


class DataError(PokeWatchError, ValueError):
    """Bad input data: missing file, bad column, bad value (CLI exit code 2)."""

    exit_code = 2


class ConfigError(PokeWatchError, ValueError):
    """Bad usage: unknown component, unknown or unconvertible parameter (CLI exit code 2)."""

    exit_code = 2


class PluginError(PokeWatchError):
    """A plugin is broken or conflicts with another one (CLI exit code 1)."""


class TrackingError(PokeWatchError):
    """The MLflow tracking store could not be reached or written (CLI exit code 1)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread by the CLI's handler: handled like Ctrl-C
    (the run ends KILLED, temporary folders are removed), exit code 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
