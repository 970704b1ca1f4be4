"""The front door: ``evaluate()`` checks what it is given and runs the local engine
(``evaluation``: the table in this process) or the dask engine (``dask_engine``: partitions on
a cluster). dask is imported only when asked for."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pokewatch_core.components import Metric, Model, SignalPolicy
from pokewatch_core.data.tables import load_prices, prepare_prices
from pokewatch_core.defaults import DEFAULT_POLICY
from pokewatch_core.engines.dask_engine import dask_result
from pokewatch_core.errors import ConfigError
from pokewatch_core.evaluation.runner import EvaluationResult, evaluate_table, parse_test_start
from pokewatch_core.plugins.resolve import resolve_components


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
    scheduler: str = "local",
    partitions: int | None = None,
    output_dir: str | Path | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on ``data`` walk-forward, one step ahead, and compute ``metrics``.

    ``data`` is a price table (DataFrame, or a parquet/CSV path). Components are given by
    name or as classes/instances; ``metrics=None`` means every registered metric. ``params``
    maps parameter names (``window_size``, or ``policy.buy_threshold_pct`` to aim at one
    component) to values or strings. With ``test_start``, the model is fitted on the rows
    before it and only rows on or after it are predicted and scored. ``progress`` is called
    with the name of each stage as it starts.

    ``engine="dask"`` (``pip install 'pokewatch[dask]'``) evaluates on a Dask cluster:
    ``data`` is then a path (a parquet/CSV file, a folder or a glob of parquet files) that
    the workers read; ``scheduler`` is ``"local"`` (a LocalCluster started for the call) or
    an address; ``partitions`` the number of card partitions; ``output_dir`` where the
    workers write the evaluation frame (default: a new temporary folder). See
    docs/scaling.md.
    """
    report = progress or (lambda stage: None)
    report("checking the data")
    model_obj, policy_obj, metric_objs = resolve_components(model, policy, metrics, params)
    start = parse_test_start(test_start)
    if engine == "dask":
        if not isinstance(data, str | Path):
            raise ConfigError("engine 'dask': data must be a path the workers can read")
        return dask_result(
            data, model_obj, policy_obj, metric_objs, start, output_dir=output_dir,
            scheduler=scheduler, partitions=partitions, progress=progress,
        )  # fmt: skip
    if engine != "local":
        raise ConfigError(f"unknown engine {engine!r} (use 'local' or 'dask')")
    if scheduler != "local" or partitions is not None or output_dir is not None:
        raise ConfigError("scheduler, partitions and output_dir apply to engine 'dask' only")
    if isinstance(data, str | Path):
        table = load_prices(data)
    else:
        table = prepare_prices(data, source or "data")

    return evaluate_table(table, model_obj, policy_obj, metric_objs, start, source, report)
