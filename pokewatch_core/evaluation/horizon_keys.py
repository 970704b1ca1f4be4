"""The names of a backtest's per-horizon metrics: ``<metric>_h<h>`` (``rmse_h7``), the keys
the runs table shows, that ``--metric``, gate rules and ``compare`` name (docs/backtests.md)."""

from __future__ import annotations

import re

from pokewatch_core.errors import ConfigError

_KEY = re.compile(r"^(?P<metric>.+)_h(?P<horizon>[1-9][0-9]*)$")


def horizon_key(name: str, h: int) -> str:
    """The key of metric ``name`` at horizon ``h``: ``rmse_h7``."""
    return f"{name}_h{h}"


def split_key(key: str) -> tuple[str, int | None]:
    """``rmse_h7`` -> ``("rmse", 7)``; a plain metric name -> ``(name, None)``."""
    found = _KEY.match(key)
    if found is None:
        return key, None
    return found["metric"], int(found["horizon"])


def metric_of_key(key: str) -> str:
    """The metric a key names (``rmse_h7`` -> ``rmse``)."""
    return split_key(key)[0]


def check_horizon_key(key: str, horizon: int, option: str) -> None:
    """Refuse a per-horizon key beyond ``horizon`` (or on a one-step run)."""
    _, h = split_key(key)
    if h is None:
        return
    if horizon == 1:
        raise ConfigError(f"{option} {key!r} names horizon {h}: it needs --horizon {h} or more")
    if h > horizon:
        raise ConfigError(f"{option} {key!r} names horizon {h}, beyond the horizon {horizon}")
