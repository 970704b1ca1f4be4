"""Parameter sweeps: expand a grid, evaluate every combination on data validated once, rank.

A grid maps parameter names (as ``-p`` takes them: ``window_size``, ``policy.x``) to lists of
values. On the command line ``-p KEY=V1,V2,V3`` is a list and ``-p KEY=START:STOP:STEP`` an
inclusive range; a grid file (TOML or YAML) maps names to a value, a list, or a
``{start, stop, step}`` table. Which combination is best is decided by one metric, in the
direction its own metadata gives (``greater_is_better``; smaller is better when it says
nothing).
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pokewatch_core.engines.dask_engine import dask_result
from pokewatch_core.errors import ConfigError, PokeWatchError
from pokewatch_core.evaluation.runner import EvaluationResult, evaluate_prepared
from pokewatch_core.plugins.resolve import resolve_components

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
    if (b - a) / s < 0:
        raise ConfigError(f"range {spec!r}: the step goes away from the stop")
    count = math.floor((b - a) / s + 1e-9) + 1
    if count > MAX_COMBINATIONS:
        raise ConfigError(f"range {spec!r} has {count:,} values (at most {MAX_COMBINATIONS:,})")
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


@dataclass(frozen=True)
class Trial:
    """One evaluated combination."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    logged_params: dict[str, str] = field(default_factory=dict)  # as a run logs them


@dataclass
class SweepPlan:
    """What a sweep evaluates: the validated table and the settings shared by every trial."""

    table: pd.DataFrame | None  # None for an engine that reads the data itself
    model: str
    policy: str
    metrics: list[str] | None
    fixed: dict[str, Any]
    combos: list[dict[str, Any]]
    test_start: str | None

    def params(self, number: int) -> dict[str, Any]:
        """The parameters of trial ``number``: the fixed ones, then the combination."""
        return {**self.fixed, **self.combos[number]}

    def check(self) -> None:
        """Build every combination's components: a bad value fails before anything runs."""
        for number in range(len(self.combos)):
            resolve_components(self.model, self.policy, self.metrics, self.params(number))

    def evaluate(self, number: int) -> EvaluationResult:
        """Evaluate trial ``number`` on the shared table."""
        model, policy, metrics = resolve_components(
            self.model, self.policy, self.metrics, self.params(number)
        )
        assert self.table is not None, "a plan without a table evaluates elsewhere"
        return evaluate_prepared(self.table, model, policy, metrics, self.test_start)

    def release(self, result: EvaluationResult) -> None:
        """Free what evaluating a trial left behind once its metrics are kept (nothing here:
        a result in memory goes with its last reference)."""

    def run(self, jobs: int = 1, on_trial: Callable[[Trial], None] | None = None) -> list[Trial]:
        """Evaluate every trial (on ``jobs`` processes); ``on_trial`` is called with each as it
        finishes. Returns them in grid order."""
        done: dict[int, Trial] = {}

        def finish(trial: Trial) -> None:
            done[trial.number] = trial
            if on_trial is not None:
                on_trial(trial)

        if jobs <= 1 or len(self.combos) <= 1:
            for number in range(len(self.combos)):
                finish(_trial(self, number))
        else:
            for trial in _parallel(self, jobs):
                finish(trial)
        return [done[n] for n in sorted(done)]


def _trial(plan: SweepPlan, number: int) -> Trial:
    result = plan.evaluate(number)
    logged = {k: str(v) for k, v in result.params.items()}
    plan.release(result)
    return Trial(number, plan.params(number), dict(result.metrics), logged)


_PLAN: SweepPlan | None = None  # the plan a forked worker inherited


def _worker_trial(number: int) -> Trial:
    assert _PLAN is not None
    return _trial(_PLAN, number)


def _parallel(plan: SweepPlan, jobs: int) -> Iterator[Trial]:
    """Trials on ``jobs`` forked processes that inherit the validated table (no copy, no
    pickling of the data); only the metrics travel back."""
    import multiprocessing

    global _PLAN
    _PLAN = plan
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    try:
        pending: set[Future[Trial]] = {
            pool.submit(_worker_trial, n) for n in range(len(plan.combos))
        }
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _PLAN = None


def varying_keys(combos: Sequence[Mapping[str, Any]]) -> list[str]:
    """The parameters whose value differs between combinations, in first-seen order."""
    keys = dict.fromkeys(k for combo in combos for k in combo)
    return [k for k in keys if len({repr(c.get(k)) for c in combos}) > 1]


def ranking_direction(metric: str) -> bool:
    """Whether the best combination has the largest ``metric`` (its ``greater_is_better``);
    a metric with no direction (a count, a signal rate) cannot pick a best."""
    from pokewatch_core.plugins.registry import get_plugins

    better = get_plugins().metrics.get(metric).greater_is_better
    if better is None:
        raise ConfigError(
            f"metric {metric!r} has no better direction (greater_is_better is None): "
            "rank by an error, a skill or a return"
        )
    return bool(better)


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


def best_trial(trials: Sequence[Trial], metric: str, greater_is_better: bool | None) -> Trial:
    """The best trial by ``metric`` (NaN never wins; ties: the earlier trial)."""
    scored = [t for t in trials if not math.isnan(t.metrics.get(metric, math.nan))]
    if not scored:
        raise PokeWatchError(f"no combination has a value for {metric!r}: nothing to rank")
    sign = -1.0 if greater_is_better else 1.0
    return min(scored, key=lambda t: (sign * t.metrics[metric], t.number))


def ranking(trials: Sequence[Trial], metric: str, greater_is_better: bool | None) -> pd.DataFrame:
    """One row per trial, best first: rank, trial, the parameters that vary between trials,
    every metric."""
    keys = varying_keys([t.params for t in trials])
    rows = [{"trial": t.number, **{k: t.params.get(k) for k in keys}, **t.metrics} for t in trials]
    table = pd.DataFrame(rows, columns=["trial", *keys, *trials[0].metrics]) if trials else None
    if table is None:
        return pd.DataFrame()
    table = table.sort_values(
        [metric, "trial"], ascending=[not greater_is_better, True], na_position="last"
    )
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


@dataclass
class SweepResult:
    """What ``run_sweep`` returns: every trial, the ranking table, the best trial, and the
    parent run's id when the sweep was logged."""

    trials: list[Trial]
    table: pd.DataFrame
    best: Trial
    parent_run_id: str | None = None
    child_run_ids: dict[int, str] = field(default_factory=dict)


@dataclass
class DaskSweepPlan(SweepPlan):
    """A sweep whose trials run on the dask engine: each reads ``data`` on the workers of
    ``scheduler`` (one cluster for the whole sweep) and writes its frame under ``frames``;
    a trial's frame is removed once its metrics are kept."""

    data: str = ""
    scheduler: str = "local"
    partitions: int | None = None
    frames: Path = Path(".")

    def evaluate(self, number: int) -> EvaluationResult:
        model, policy, metrics = resolve_components(
            self.model, self.policy, self.metrics, self.params(number)
        )
        folder = Path(tempfile.mkdtemp(prefix=f"trial-{number}-", dir=self.frames))
        return dask_result(
            self.data, model, policy, metrics, self.test_start, output_dir=folder,
            scheduler=self.scheduler, partitions=self.partitions,
        )  # fmt: skip

    def release(self, result: EvaluationResult) -> None:
        if result.frame_dir is not None:
            shutil.rmtree(result.frame_dir, ignore_errors=True)
