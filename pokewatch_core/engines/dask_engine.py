"""The dask engine: evaluate on a Dask cluster, partitioned by card, metrics merged exactly.

The workers read the input (a parquet/CSV file, a folder or a glob of parquet files), route
its rows to partitions by a stable hash of ``card_id`` through a scratch folder, validate and
evaluate each partition, write its evaluation frame as one part of a parquet dataset and
return only metric states; the client merges and finalizes them. A metric without a state is
computed on the gathered evaluation frame when it has at most ``gather_rows`` rows, else the
run is refused before it starts.

Paths (data, ``output_dir``) must be the same for the client and every worker: on several
machines, a shared filesystem. dask is imported only when ``evaluate_on_dask`` is called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pokewatch_core.analysis.analyses import Analyses, AnalysisStatistics
from pokewatch_core.analysis.overview import Overview, OverviewState
from pokewatch_core.components import Component, Metric, Model, SignalPolicy
from pokewatch_core.data.tables import ALL_PRICES_MISSING
from pokewatch_core.engines import partitions as parts
from pokewatch_core.errors import ConfigError, DataError, PokeWatchError
from pokewatch_core.evaluation.scoring import (
    States,
    finalize_metrics,
    inferred_of,
    merge_states,
    metric_statistics,
)

if TYPE_CHECKING:
    from distributed import Client

    from pokewatch_core.evaluation.runner import EvaluationResult
    from pokewatch_core.statistics import MetricValue

DEFAULT_GATHER_ROWS = 5_000_000
"""Rows of evaluation frame the client may gather for a metric without a state (about 0.7 GB
at 130 bytes a row)."""
SCRATCH = "_routing"  # inside output_dir while the run lasts; parquet readers skip "_" names
EXTRA = "pip install 'pokewatch[dask]'"


@dataclass
class DaskEvaluation:
    """What ``evaluate_on_dask`` returns: the metrics, the merged states (by statistic: the
    metrics' and the analyses'), the analyses finalized from them, where the evaluation frame
    was written, and how the work was split."""

    metrics: dict[str, float]
    states: States
    analyses: Analyses  # overview, signal quality, strategy, per-card table (merged)
    frame_dir: Path
    partitions: int
    rows: int
    frame: pd.DataFrame | None = None  # gathered only for metrics without a state
    inferred: dict[str, dict[str, Any]] = field(default_factory=dict)  # by metric

    @property
    def params(self) -> dict[str, Any]:
        """The run parameters this engine adds."""
        return {"engine": "dask", "partitions": self.partitions}


def dask_result(
    data: str | Path,
    model: Model,
    policy: SignalPolicy,
    metrics: Mapping[str, Metric],
    test_start: str | pd.Timestamp | None = None,
    *,
    output_dir: str | Path | None = None,
    scheduler: str = "local",
    partitions: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """``evaluate_on_dask`` as an ``EvaluationResult`` (what ``evaluate(engine="dask")``
    returns): the frame stays in ``output_dir`` (default: a new temporary folder, the
    caller's to remove), the analyses and the plots' sample come from the merged states."""
    from pokewatch_core.evaluation.runner import EvaluationResult, parse_test_start

    made = output_dir is None
    if output_dir is None:
        output_dir = tempfile.mkdtemp(prefix="pokewatch-frame-")
    try:
        run = evaluate_on_dask(
            data, model, policy, metrics, test_start,
            output_dir=output_dir, scheduler=scheduler, partitions=partitions,
            progress=progress,
        )  # fmt: skip
    except BaseException:
        if made:  # a folder the caller never saw
            shutil.rmtree(output_dir, ignore_errors=True)
        raise
    result = EvaluationResult(
        run.metrics,
        run.frame,
        model,
        policy,
        dict(metrics),
        parse_test_start(test_start),
        run.states,
        frame_dir=run.frame_dir,
        engine_params=run.params,
    )
    result.analyses = run.analyses  # merged already: nothing to compute again
    result.inferred = run.inferred
    return result


def evaluate_on_dask(
    data: str | Path,
    model: Model,
    policy: SignalPolicy,
    metrics: Mapping[str, Metric],
    test_start: str | pd.Timestamp | None = None,
    *,
    output_dir: str | Path,
    scheduler: str = "local",
    partitions: int | None = None,
    gather_rows: int = DEFAULT_GATHER_ROWS,
    workers: int | None = None,
    memory_limit: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> DaskEvaluation:
    """Evaluate built components (``resolve_components``) on ``data`` on a Dask cluster.

    ``scheduler``: ``"local"`` (a ``LocalCluster`` of ``workers`` processes bound to
    127.0.0.1, each with ``memory_limit``, started and stopped here) or a scheduler address
    (``tcp://host:8786``). ``partitions``: how many card partitions (default: about a million
    rows each, at least two per worker thread). ``output_dir`` (new or empty) receives the
    evaluation frame as ``part-NNNNN.parquet`` files, one per partition, written by the
    workers. Raises ``ConfigError``/``DataError`` (exit 2) before any work for bad options, a
    component the workers cannot import, or a stateless metric over more than
    ``gather_rows`` rows.
    """
    report = progress or (lambda stage: None)
    from pokewatch_core.evaluation.runner import parse_test_start

    start = parse_test_start(test_start)
    if partitions is not None and partitions < 1:
        raise ConfigError(f"partitions must be at least 1, got {partitions}")
    _check_scheduler(scheduler)
    # the workers may run elsewhere, in another working directory: absolute paths only
    data = os.path.abspath(os.path.expanduser(str(data)))
    out = Path(os.path.abspath(os.path.expanduser(str(output_dir))))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out}: the evaluation frame's folder must be new or empty")
    source = Path(data)
    if source.is_dir() and (out == source or source in out.parents):
        raise ConfigError(f"{out}: the evaluation frame's folder must not be inside the input")
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the evaluation frame's folder ({exc})") from exc
    scratch = str(out / SCRATCH)
    try:
        with contextlib.ExitStack() as stack:
            if scheduler == "local":  # a remote cluster's paths need only exist on its side
                parts.input_files(data)  # a missing path is one line, before a cluster starts
            report("connecting to the dask scheduler")
            client = stack.enter_context(_client(scheduler, workers, memory_limit))
            stack.callback(shutil.rmtree, scratch, ignore_errors=True)
            run = _run(client, data, model, policy, dict(metrics), start, out, scratch,
                       partitions, gather_rows, report)  # fmt: skip
        if run.rows and not any(out.glob("part-*.parquet")):
            raise ConfigError(
                f"the workers wrote the evaluation frame where this machine does not see "
                f"it ({out}): with a remote scheduler, give a folder both share"
            )
        return run
    except BaseException as exc:
        _remove(out, existed)  # the cluster is closed: no half-written dataset is left
        if _killed_worker(exc):
            raise PokeWatchError(
                f"dask workers died running {exc.task!s:.60} (out of memory? use more "  # type: ignore[attr-defined]
                "partitions or a higher memory limit per worker)"
            ) from exc
        raise


def _killed_worker(exc: BaseException) -> bool:
    """Whether dask gave up on a task because its workers kept dying."""
    try:
        from distributed import KilledWorker
    except ImportError:
        return False
    return isinstance(exc, KilledWorker)


SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://[^\s/:]+(:\d+)?$|^[^\s/:]+:\d+$")


def _check_scheduler(scheduler: str) -> None:
    """``local`` or a scheduler address (``tcp://host:8786``, ``host:8786``)."""
    if scheduler != "local" and not SCHEDULER_ADDRESS.match(scheduler):
        raise ConfigError(
            f"scheduler {scheduler!r}: not 'local' nor an address like tcp://host:8786"
        )


SETTLE_SECONDS = 600  # how long a failed run waits for the tasks already running


def _settle(client: Client, futures: list[Any]) -> None:
    """Cancel ``futures`` and wait until no worker is still running a task (a running task
    cannot be stopped, and would write its part after the folder was cleaned)."""
    import time

    with contextlib.suppress(Exception):
        client.cancel(futures)
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        try:
            busy = client.run(_executing)
        except Exception:
            return  # the workers are gone: nothing of theirs can write any more
        if not any(busy.values()):
            return
        time.sleep(0.1)


def _executing(dask_worker: Any) -> int:
    """Run on a worker: how many tasks it is executing now."""
    return len(dask_worker.state.executing)


def _remove(out: Path, keep_folder: bool) -> None:
    """Remove what the run wrote to ``out`` (and ``out`` itself unless it was there)."""
    if not keep_folder:
        shutil.rmtree(out, ignore_errors=True)
        return
    for item in out.iterdir():
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


def _run(
    client: Client,
    data: str,
    model: Model,
    policy: SignalPolicy,
    metrics: dict[str, Metric],
    start: pd.Timestamp | None,
    out: Path,
    scratch: str,
    partitions: int | None,
    gather_rows: int,
    report: Callable[[str], None],
) -> DaskEvaluation:
    _check_workers(client, model, policy, metrics)
    report("reading the input's layout")
    pieces: list[parts.Piece] = client.submit(parts.plan, data, pure=False).result()
    rows = sum(piece.rows for piece in pieces)
    threads = sum(client.nthreads().values())
    n = partitions or parts.default_partitions(rows, threads)
    unmerged = parts.stateless(metrics)
    if unmerged and rows > gather_rows:
        raise ConfigError(
            f"metric '{unmerged[0]}' declares no mergeable state and the input's {rows} rows "
            f"exceed the {gather_rows} the client may gather (raise gather_rows, or give "
            "the metric a statistic)"
        )
    report(f"routing {rows} rows to {n} partitions by card")
    routed = client.map(
        parts.route, pieces, range(len(pieces)), [n] * len(pieces), [scratch] * len(pieces),
        pure=False,
    )  # fmt: skip
    try:
        for future in routed:
            future.result()
    except BaseException:
        _settle(client, routed)
        raise
    from distributed import as_completed

    tasks = client.map(
        parts.evaluate_bucket,
        range(n),
        output_dir=str(out),
        scratch=scratch,
        model=model,
        policy=policy,
        metrics=metrics,
        test_start=start,
        source=data,
        keep_frame=bool(unmerged),
        pure=False,
    )
    merged: States = {}
    total, frames = 0, []
    try:
        for done, future in enumerate(as_completed(tasks, loop=client.loop), start=1):
            count, states, frame = future.result()
            future.release()
            merged = merge_states(metrics, merged, states)
            total += count
            if frame is not None:
                frames.append(frame)
            report(f"evaluated partition {done}/{n}")
    except BaseException:
        _settle(client, tasks)  # no task may write a part after the folder is cleaned
        raise
    seen: OverviewState = merged[Overview()]  # the checks of the whole table
    if not seen.priced:
        raise DataError(f"{data}: column 'market_price': {ALL_PRICES_MISSING}")
    if start is not None and not seen.scored_period_rows:
        raise DataError(f"{data}: no rows on or after test_start {start.date()}")
    values = finalize_metrics(metrics, merged)
    gathered = None
    if unmerged:
        gathered = pd.concat(frames, ignore_index=True)
        values.update(_stateless_values(gathered, metrics, unmerged, start))
    ordered = {name: values[name].value for name in metrics}
    analyses = AnalysisStatistics.of(metric_statistics(metrics).values()).analyses(merged)
    run = DaskEvaluation(ordered, merged, analyses, out, n, total, gathered)
    run.inferred = inferred_of(values)
    return run


def _stateless_values(
    frame: pd.DataFrame, metrics: dict[str, Metric], names: list[str], start: pd.Timestamp | None
) -> dict[str, MetricValue]:
    """Metrics without a statistic, on the gathered evaluation frame, as the local engine
    does."""
    from pokewatch_core.evaluation.scoring import compute_metrics, fit_metrics, history_and_scored

    chosen = {name: metrics[name] for name in names}
    history, scored = history_and_scored(frame, start)
    fit_metrics(chosen.values(), history)
    return compute_metrics(chosen, scored)


@contextmanager
def local_scheduler(workers: int | None = None, memory_limit: str | None = None) -> Iterator[str]:
    """The address of a ``LocalCluster`` of this machine (worker processes bound to
    127.0.0.1, no dashboard), started for the block and stopped after it."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the dask engine needs the optional extra: {EXTRA}") from exc
    # worker processes started with SIGINT ignored keep ignoring it: Ctrl-C reaches only this
    # process, which stops the cluster in order (no half-written part, no worker tracebacks)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        cluster = _local_cluster(workers, memory_limit)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def _local_cluster(workers: int | None, memory_limit: str | None) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        # no dashboard; the scheduler's own HTTP endpoint on a free loopback port
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
        memory_limit=memory_limit or "auto",
        silence_logs=logging.CRITICAL,  # failures reach the client as exceptions
    )


@contextmanager
def _client(scheduler: str, workers: int | None, memory_limit: str | None) -> Iterator[Client]:
    """A client of ``scheduler``: a LocalCluster started here for ``"local"``."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ConfigError(f"the dask engine needs the optional extra: {EXTRA}") from exc
    if scheduler == "local":
        with (
            local_scheduler(workers, memory_limit) as address,
            Client(address, set_as_default=False) as client,
        ):
            yield client
        return
    if workers is not None or memory_limit is not None:
        raise ConfigError("workers and memory_limit apply to scheduler 'local' only")
    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        line = " ".join(str(exc).split())[:160]
        raise ConfigError(f"cannot reach the dask scheduler at {scheduler}: {line}") from exc
    with client:
        yield client


def _importable(modules: list[str]) -> tuple[str, dict[str, str]]:
    """Run on each worker: its pokewatch version and the modules it cannot import."""
    from pokewatch_core.version import __version__

    problems = {}
    for module in modules:
        try:
            import_module(module)
        except Exception as exc:
            problems[module] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:160]
    return __version__, problems


def _check_workers(
    client: Client, model: Model, policy: SignalPolicy, metrics: dict[str, Metric]
) -> None:
    """Every worker must run this pokewatch and import every component's module (a plugin's
    distribution installed in each worker's environment)."""
    from pokewatch_core.version import __version__

    components: list[Component] = [model, policy, *metrics.values()]
    modules = {type(c).__module__: c for c in components if type(c).__module__ != "__main__"}
    try:
        answers = client.run(_importable, sorted(modules))
    except Exception as exc:
        line = " ".join(str(exc).split())[:160]
        raise ConfigError(
            f"cannot run PokeWatch on the dask workers ({line}); install it there: {EXTRA}"
        ) from exc
    if not answers:
        raise ConfigError("the dask scheduler has no workers")
    for worker, (version, problems) in sorted(answers.items()):
        if version != __version__:
            raise ConfigError(
                f"dask worker {worker} runs pokewatch {version}, this client {__version__}"
            )
        for module, problem in problems.items():
            c = modules[module]
            raise ConfigError(
                f"{c.kind} '{c.name}' cannot be imported on dask worker {worker} "
                f"({problem}); install its distribution in every worker's environment"
            )
