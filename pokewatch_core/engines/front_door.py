"""The front door: ``evaluate()``, and the engine options every caller (``evaluate()``,
``run_sweep()``, ``pokewatch train`` and ``pokewatch sweep``) checks in this one place and
turns into an engine. dask is imported only when its engine is entered."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pokewatch_core.components import Metric, Model, SignalPolicy
from pokewatch_core.defaults import DEFAULT_POLICY
from pokewatch_core.engines.base import Engine
from pokewatch_core.errors import ConfigError
from pokewatch_core.evaluation.cutoffs import BacktestOptions, parse_refit
from pokewatch_core.evaluation.spec import EvaluationSpec

if TYPE_CHECKING:
    from pokewatch_core.evaluation.runner import EvaluationResult

ENGINES = ("local", "dask")


Spelling = Callable[[str, str | None], str]
"""Names an option (and a value) as the caller knows it: ``--engine dask``, ``engine='dask'``."""


def python_spelling(option: str, value: str | None = None) -> str:
    """How an option is named to a Python caller: ``partitions``, ``engine='dask'``."""
    return option if value is None else f"{option}={value!r}"


def cli_spelling(option: str, value: str | None = None) -> str:
    """How an option is named on the command line: ``--frame-dir``, ``--engine dask``."""
    flag = "--" + option.replace("_", "-")
    return flag if value is None else f"{flag} {value}"


@dataclass(frozen=True)
class EngineOptions:
    """The engine asked for and its options. ``check`` refuses what does not go together;
    ``engine_for`` makes the engine."""

    engine: str = "local"
    scheduler: str | None = None
    partitions: int | None = None
    frame_dir: str | Path | None = None
    id_col: str | None = None
    date_col: str | None = None
    price_col: str | None = None

    def check(self, spell: Spelling = python_spelling, *, jobs: int = 1) -> None:
        """Refuse an unknown engine and options that do not go with it (``ConfigError``),
        ``jobs`` (a sweep's parallel processes) included; ``spell`` names an option as the
        caller knows it (``--frame-dir``, ``frame_dir``)."""
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r} (use 'local' or 'dask')")
        if jobs > 1 and self.engine != "local":
            raise ConfigError(
                f"{spell('jobs', None)} needs {spell('engine', 'local')} (the cluster's workers "
                "run in parallel)"
            )
        if self.engine == "local":
            given = [
                name
                for name in ("scheduler", "partitions", "frame_dir")
                if getattr(self, name) is not None
            ]
            if given:
                raise ConfigError(f"{spell(given[0], None)} needs {spell('engine', 'dask')}")
            return
        if any(c is not None for c in (self.id_col, self.date_col, self.price_col)):
            raise ConfigError(
                f"{spell('id_col', None)}/{spell('date_col', None)}/{spell('price_col', None)} "
                f"need {spell('engine', 'local')} (the workers read the standard columns card_id, "
                "date, market_price)"
            )
        if self.scheduler not in (None, "local") and self.frame_dir is None:
            raise ConfigError(
                f"{spell('frame_dir', None)} is needed with a remote {spell('scheduler', None)}: "
                "a folder "
                "this machine and the workers share"
            )

    def engine_for(
        self,
        data: pd.DataFrame | str | Path,
        source: str | None = None,
        *,
        spell: Spelling = python_spelling,
        jobs: int = 1,
    ) -> Engine:
        """The engine of these options over ``data``, once ``check`` passed (``spell`` and
        ``jobs`` as there); hold it in a ``with`` block, which releases what it acquires."""
        self.check(spell, jobs=jobs)
        if self.engine == "local":
            from pokewatch_core.engines.local import LocalEngine

            return LocalEngine(
                data, source=source, id_col=self.id_col, date_col=self.date_col,
                price_col=self.price_col,
            )  # fmt: skip
        from pokewatch_core.engines.dask_engine import DaskEngine

        return DaskEngine(
            data if not isinstance(data, str | Path) else str(data),  # type: ignore[arg-type]
            scheduler="local" if self.scheduler is None else self.scheduler,
            partitions=self.partitions,
            frame_dir=self.frame_dir,
        )


def evaluate(
    model: str | Model | type[Model],
    data: pd.DataFrame | str | Path,
    policy: str | SignalPolicy | type[SignalPolicy] = DEFAULT_POLICY,
    metrics: Sequence[str | Metric | type[Metric]] | None = None,
    params: Mapping[str, Any] | None = None,
    test_start: str | pd.Timestamp | None = None,
    *,
    source: str | None = None,
    progress: Callable[[str], None] | None = None,
    engine: str = "local",
    scheduler: str | None = None,
    partitions: int | None = None,
    output_dir: str | Path | None = None,
    horizon: int = 1,
    windows: int | None = None,
    step: int | None = None,
    refit: bool | int | str | None = None,
    input_size: int | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on ``data`` walk-forward, one step ahead, and compute ``metrics``.

    A backtest (docs/backtests.md): ``horizon`` periods ahead from every date, or from
    ``windows`` cutoffs spaced ``step`` periods apart (default ``horizon``) ending ``horizon``
    periods before the data's last date; ``refit`` every window (``True``, the default), once
    (``False``) or every K windows (``K``); ``input_size`` a sliding training window of that
    many periods (default: expanding). Metrics are then pooled over the horizons and also
    given per horizon (``rmse_h7``, in ``result.metrics``) and per cutoff
    (``result.backtest.by_cutoff``).

    ``data`` is a price table (DataFrame, or a parquet/CSV path). Components are given by
    name or as classes/instances; ``metrics=None`` means every registered metric. ``params``
    maps parameter names (``window_size``, or ``policy.buy_threshold_pct`` to aim at one
    component) to values or strings. With ``test_start``, the model is fitted on the rows
    before it and only rows on or after it are predicted and scored. ``progress`` is called
    with the name of each stage as it starts.

    ``engine="dask"`` (the ``dask`` extra) evaluates on a Dask cluster: ``data`` is then a
    path (a parquet/CSV file, a folder or a glob of parquet files) that the workers read, or
    a pandas or dask DataFrame, written where they read it (with a remote scheduler: in
    ``output_dir``'s folder, which they share);
    ``scheduler`` is ``"local"`` (a LocalCluster started for the call, the default) or an
    address; ``partitions`` the number of card partitions; ``output_dir`` where the workers
    write the evaluation frame (default: a new temporary folder, the caller's to remove).
    See docs/scaling.md.

    This is ``EvaluationSpec.build`` and one ``engine.evaluate(spec)`` inside ``with
    engine``, the engine made by ``EngineOptions.engine_for``.
    """
    report = progress or (lambda stage: None)
    report("checking the data")
    options = backtest_options(horizon, windows, step, refit, input_size)
    spec = EvaluationSpec.build(
        model, policy, metrics, params, test_start, options, spell=python_spelling
    )
    engine_options = EngineOptions(engine, scheduler, partitions, frame_dir=output_dir)
    chosen = engine_options.engine_for(data, source, spell=_evaluate_spelling)
    chosen.check_output(output_dir)
    with chosen:
        chosen.open(progress)
        if chosen.holds_frame:
            return chosen.evaluate(spec, progress=progress)
        # the frame stays on disk for the caller: in output_dir, else a new temporary folder
        folder = output_dir or tempfile.mkdtemp(prefix="pokewatch-frame-")
        try:
            return chosen.evaluate(spec, progress=progress, output_dir=folder)
        except BaseException:
            if output_dir is None:  # a folder the caller never saw
                shutil.rmtree(folder, ignore_errors=True)
            raise


def backtest_options(
    horizon: int = 1,
    windows: int | None = None,
    step: int | None = None,
    refit: bool | int | str | None = None,
    input_size: int | None = None,
    *,
    spell: str = "refit",
) -> BacktestOptions:
    """The backtest options as every caller gives them (``refit``: ``True``/``"every"``,
    ``False``/``"once"`` or a number of windows; ``spell``: the caller's name of it)."""
    return BacktestOptions(
        horizon, windows, step, None if refit is None else parse_refit(refit, spell), input_size
    )


def _evaluate_spelling(option: str, value: str | None = None) -> str:
    """``evaluate()`` calls the frame's folder ``output_dir``."""
    return python_spelling("output_dir" if option == "frame_dir" else option, value)
