"""Sweep grids: ``-p KEY=V1,V2,V3`` lists, ``-p KEY=START:STOP:STEP`` inclusive ranges, grid
files (TOML or YAML mapping names to a value, a list, or a ``{start, stop, step}`` table), and
every combination of their values."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pokewatch_core.errors import ConfigError

MAX_COMBINATIONS = 10_000
RANGE_DIGITS = 12  # range values are rounded to this many significant digits (0.1 + 0.05 ...)


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(f"range {spec!r}: {text!r} is not a number") from exc
    if not math.isfinite(value):
        raise ConfigError(f"range {spec!r}: {text!r} is not a finite number")
    return value


def expand_range(start: Any, stop: Any, step: Any, spec: str = "") -> list[Any]:
    """``start, start + step, …`` up to and including ``stop`` (ints stay ints)."""
    spec = spec or f"{start}:{stop}:{step}"
    a, b, s = (_number(str(v), spec) for v in (start, stop, step))
    if s == 0:
        raise ConfigError(f"range {spec!r}: the step is 0")
    steps = (b - a) / s  # inf when the span overflows or the step is tiny
    if steps < 0:
        raise ConfigError(f"range {spec!r}: the step goes away from the stop")
    if not steps + 1e-9 < MAX_COMBINATIONS:  # also catches inf and NaN
        exact = math.isfinite(steps) and steps <= 1e15  # a count worth printing
        size = f"{math.floor(steps + 1e-9) + 1:,}" if exact else f"more than {MAX_COMBINATIONS:,}"
        raise ConfigError(f"range {spec!r} has {size} values (at most {MAX_COMBINATIONS:,})")
    count = math.floor(steps + 1e-9) + 1
    whole = all(float(v).is_integer() for v in (a, b, s)) and all(
        "." not in str(v) and "e" not in str(v).lower() for v in (start, stop, step)
    )
    if whole:
        return [int(a + k * s) for k in range(count)]
    return [float(f"{a + k * s:.{RANGE_DIGITS}g}") for k in range(count)]


def parse_values(key: str, text: str) -> list[Any]:
    """The values of one ``-p KEY=TEXT``: a list ``a,b,c``, a range ``start:stop:step`` or one
    value (strings; components convert them by their annotations)."""
    if ":" in text and "," not in text:
        parts = text.split(":")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise ConfigError(f"parameter {key!r}: a range is START:STOP:STEP, got {text!r}")
        start, stop, step = (p.strip() for p in parts)
        return expand_range(start, stop, step, spec=text)
    if "," in text:
        values = [part.strip() for part in text.split(",")]
        if not all(values):
            raise ConfigError(f"parameter {key!r}: empty value in the list {text!r}")
        return values
    return [text]


def read_grid(path: str | Path) -> dict[str, list[Any]]:
    """A grid file: TOML (``.toml``) or YAML (``.yaml``/``.yml``) mapping each parameter to a
    value, a list of values, or a table ``{start, stop, step}``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--grid {path}: no such file")
    if not path.is_file():
        raise ConfigError(f"--grid {path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--grid {path}: cannot read it as UTF-8 text ({exc})") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            raw: Any = tomllib.loads(text)
        elif suffix in {".yaml", ".yml"}:
            try:
                import yaml
            except ImportError as exc:
                raise ConfigError(
                    f"--grid {path}: YAML needs PyYAML (pip install pyyaml), or use TOML"
                ) from exc
            raw = yaml.safe_load(text)
        else:
            raise ConfigError(f"--grid {path}: use a .toml or .yaml file")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"--grid {path}: cannot parse: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"--grid {path}: expected a table of parameters")
    grid: dict[str, list[Any]] = {}
    for key, value in _flatten(raw):
        if isinstance(value, dict):
            if set(value) != {"start", "stop", "step"}:
                raise ConfigError(
                    f"--grid {path}: {key!r} is a table; a range has exactly start, stop, step"
                )
            grid[key] = expand_range(value["start"], value["stop"], value["step"])
        elif isinstance(value, list):
            if not value:
                raise ConfigError(f"--grid {path}: {key!r} has no values")
            grid[key] = list(value)
        else:
            grid[key] = [value]
    return grid


def _flatten(raw: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``{"policy": {"buy_threshold_pct": [...]}}`` as ``policy.buy_threshold_pct``; a table
    with start, stop or step is a range, not a prefix."""
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not {"start", "stop", "step"} & set(value):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def combinations(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last key varies fastest)."""
    keys = list(grid)
    total = math.prod(len(grid[k]) for k in keys)
    if total > MAX_COMBINATIONS:
        raise ConfigError(f"the grid has {total:,} combinations (at most {MAX_COMBINATIONS:,})")
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def check_grid(grid: Mapping[str, Any]) -> dict[str, list[Any]]:
    """A grid as name -> list of values: a list or tuple is the values, a ``{start, stop,
    step}`` mapping a range; a lone string or number is refused (say ``[value]``)."""
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if isinstance(values, Mapping):
            if set(values) != {"start", "stop", "step"}:
                raise ConfigError(f"grid {key!r}: a range is {{start, stop, step}}")
            out[key] = expand_range(values["start"], values["stop"], values["step"])
        elif isinstance(values, list | tuple) and values:
            out[key] = list(values)
        else:
            raise ConfigError(
                f"grid {key!r}: expected a non-empty list of values or a range, got {values!r}"
            )
    return out
