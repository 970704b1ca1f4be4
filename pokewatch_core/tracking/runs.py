"""Queries of logged runs for ``pokewatch compare`` (and the gate's candidate lookup): runs
ranked by a metric, runs by id or unique id prefix, as plain ``RunRecord`` data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pokewatch_core.errors import ConfigError
from pokewatch_core.tracking.store import Store, tracking_client


@dataclass(frozen=True)
class RunRecord:
    """A logged run as plain data, for comparisons."""

    run_id: str
    run_name: str
    status: str
    start_time: int
    params: dict[str, str]
    metrics: dict[str, float]


def _record(run: Any) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        status=run.info.status,
        start_time=int(run.info.start_time or 0),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


def search_runs(
    experiment_name: str,
    metric: str,
    ascending: bool,
    limit: int,
    tracking_uri: str | Store | None = None,
) -> list[RunRecord]:
    """Finished runs of an experiment ranked by ``metric`` (runs without it last)."""
    client = tracking_client(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ConfigError(f"no experiment named {experiment_name!r} in {client.tracking_uri}")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=[f"metrics.`{metric}` {'ASC' if ascending else 'DESC'}"],
        max_results=limit,
    )
    records = [_record(r) for r in runs]
    # MLflow puts NaN first or last depending on the store; keep undefined values last
    defined = [r for r in records if not math.isnan(r.metrics.get(metric, math.nan))]
    return defined + [r for r in records if r not in defined]


def get_runs(run_ids: list[str], tracking_uri: str | Store | None = None) -> list[RunRecord]:
    """The runs with these ids (any experiment). A unique prefix of an id is enough (the
    tables print 8 or 12 characters); an unknown or ambiguous one is a ``ConfigError``."""
    client = tracking_client(tracking_uri)
    return [_record(client.get_run(full_run_id(client, run_id))) for run_id in run_ids]


def full_run_id(client: Any, prefix: str) -> str:
    """The one run id that starts with ``prefix`` (deleted runs included, as ``get_run``)."""
    from mlflow.entities import ViewType

    wanted = prefix.strip().lower()
    if not wanted or any(c not in "0123456789abcdef" for c in wanted):
        raise ConfigError(f"no run {prefix!r} in {client.tracking_uri} (run ids are hex)")
    experiments: list[str] = []
    token = None
    while True:  # every experiment, page by page
        page = client.search_experiments(view_type=ViewType.ALL, page_token=token)
        experiments += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    matches = sorted(
        {
            r.info.run_id
            for chunk in range(0, len(experiments), 100)  # MLflow searches 100 at most
            for r in client.search_runs(
                experiments[chunk : chunk + 100],
                filter_string=f"attributes.run_id LIKE '{wanted}%'",
                run_view_type=ViewType.ALL,
                max_results=10,
            )
        }
    )
    if not matches:
        raise ConfigError(f"no run {prefix!r} in {client.tracking_uri}")
    if len(matches) > 1:
        raise ConfigError(f"run id prefix {prefix!r} is ambiguous: matches {', '.join(matches)}")
    return str(matches[0])
