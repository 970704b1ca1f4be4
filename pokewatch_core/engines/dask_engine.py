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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from pokewatch_core.analysis.analyses import Analyses, AnalysisStatistics
from pokewatch_core.analysis.overview import Overview, OverviewState
from pokewatch_core.components import Component, Metric
from pokewatch_core.data.tables import ALL_PRICES_MISSING
from pokewatch_core.engines import partitions as parts
from pokewatch_core.engines.base import Engine
from pokewatch_core.errors import ConfigError, DataError, PokeWatchError
from pokewatch_core.evaluation.horizons import BacktestFigures, finalize_backtest
from pokewatch_core.evaluation.scoring import (
    States,
    finalize_metrics,
    inferred_of,
    merge_states,
    metric_statistics,
)
from pokewatch_core.files import temporary_folder

if TYPE_CHECKING:
    from distributed import Client

    from pokewatch_core.evaluation.runner import EvaluationResult
    from pokewatch_core.evaluation.spec import EvaluationSpec
    from pokewatch_core.statistics import MetricValue

DEFAULT_GATHER_ROWS = 5_000_000
"""Rows of evaluation frame the client may gather for a metric without a state (about 0.7 GB
at 130 bytes a row)."""
MAX_PARTITIONS = 100_000  # each partition is a task and a parquet file
SCRATCH = "_routing"  # inside output_dir while the run lasts; parquet readers skip "_" names
EXTRA = "pip install 'pokewatch[dask]' (in a checkout: uv sync --extra dask)"


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
    backtest: BacktestFigures | None = None  # a backtest's figures (no forecasts kept)

    @property
    def params(self) -> dict[str, Any]:
        """The run parameters this engine adds."""
        return {"engine": "dask", "partitions": self.partitions}


class DaskEngine(Engine):
    """Evaluations on a Dask cluster, partitioned by card, with the local engine's numbers.

    ``data``: a parquet/CSV file, a folder or a glob of parquet files, read by the workers;
    or a pandas or dask DataFrame, written as parquet for them when the engine is opened (in
    the engine's temporary folder, or in ``frame_dir``, which a remote scheduler needs).
    ``scheduler``: ``"local"`` (a ``LocalCluster`` of ``workers`` processes bound to
    127.0.0.1, each with ``memory_limit``, started when the engine is entered and stopped
    when it is left) or a scheduler address (``tcp://host:8786``). ``partitions``: how many
    card partitions (default: about a million rows each, at least two per worker thread).
    ``frame_dir``: where evaluations given no ``output_dir`` write their frames, each in a
    new folder of its own (default: a temporary folder, removed when the engine is left);
    with a remote scheduler, a folder the workers share. A metric without a mergeable
    statistic is computed on the gathered frame when it has at most ``gather_rows`` rows.
    Every option is checked here, before any connection (``ConfigError``, exit 2)."""

    name: ClassVar[str] = "dask"
    holds_frame: ClassVar[bool] = False

    def __init__(
        self,
        data: str | Path,
        *,
        scheduler: str = "local",
        partitions: int | None = None,
        frame_dir: str | Path | None = None,
        workers: int | None = None,
        memory_limit: str | None = None,
        gather_rows: int = DEFAULT_GATHER_ROWS,
    ) -> None:
        self._table: Any = None  # a DataFrame given as data: written for the workers on open
        if _is_frame(data):
            if scheduler != "local" and frame_dir is None:
                raise ConfigError(
                    "engine 'dask': a DataFrame as data on a remote scheduler needs frame_dir "
                    "(a folder the workers share, where it is written for them)"
                )
            self._table, data = data, INPUT_PLACEHOLDER
        elif not isinstance(data, str | Path):
            raise ConfigError(
                "engine 'dask': data must be a path the workers can read, or a pandas or dask "
                f"DataFrame, not {type(data).__name__}"
            )
        if partitions is not None and (
            isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1
        ):
            raise ConfigError(f"partitions must be a whole number >= 1, got {partitions!r}")
        if partitions is not None and partitions > MAX_PARTITIONS:
            raise ConfigError(
                f"partitions must be at most {MAX_PARTITIONS:,}, got {partitions:,} (each is a "
                "task and a file: a few per worker thread are enough)"
            )
        if frame_dir is not None and not str(frame_dir).strip():
            raise ConfigError("frame_dir must not be empty (leave it out for a temporary folder)")
        _check_scheduler(scheduler)
        if scheduler != "local" and (workers is not None or memory_limit is not None):
            raise ConfigError("workers and memory_limit apply to scheduler 'local' only")
        # the workers may run elsewhere, in another working directory: absolute paths only
        self.data: str = str(data) if self._table is not None else _absolute(data)
        self.scheduler = scheduler
        self.partitions = partitions
        self.frame_dir = None if frame_dir is None else Path(_absolute(frame_dir))
        if self.frame_dir is not None:
            _check_frame_folder(self.frame_dir, self.data, need_empty=False)
        self.workers, self.memory_limit, self.gather_rows = workers, memory_limit, gather_rows
        self._stack: contextlib.ExitStack | None = None
        self._client: Client | None = None
        self._root: Path | None = None  # where frames without an output_dir go
        self._made: set[Path] = set()  # frame folders this engine made (released by it)

    def open(self, progress: Callable[[str], None] | None = None) -> None:
        """Check the input exists (on a local cluster), then start or reach the scheduler."""
        if self._client is not None:
            return
        if self.scheduler == "local" and self._table is None:  # a remote cluster's paths
            parts.input_files(self.data)  # need only exist on its side; a missing path is
            # one line, before a cluster starts
        if progress is not None:
            progress("connecting to the dask scheduler")
        stack = contextlib.ExitStack()
        try:
            self._client = stack.enter_context(
                _client(self.scheduler, self.workers, self.memory_limit)
            )
            if self.frame_dir is None:
                root = Path(temporary_folder("frames"))
                stack.callback(shutil.rmtree, root, ignore_errors=True)
            else:
                root = self.frame_dir  # made when a frame first goes into it
            if self._table is not None:
                # beside the frames, not among them (an output folder must be new or empty):
                # a temporary folder here, or next to frame_dir, which the workers share
                near = None if self.scheduler == "local" else self.frame_dir
                folder = Path(tempfile.mkdtemp(prefix=".pokewatch-input-", dir=_parent(near)))
                stack.callback(shutil.rmtree, folder, ignore_errors=True)
                self.data = _write_input(self._table, folder)
        except BaseException:
            stack.close()
            self._client = None
            raise
        self._root, self._stack = root, stack

    def close(self) -> None:
        """Stop the cluster (or leave the scheduler) and remove the engine's temporary
        folder; frames left in a given ``frame_dir`` (not released) stay there."""
        stack, self._stack, self._client = self._stack, None, None
        self._made.clear()
        if stack is not None:
            stack.close()

    @property
    def client(self) -> Client:
        """The client of the engine's scheduler (opened on first use)."""
        if self._client is None:
            self.open()
        assert self._client is not None
        return self._client

    def check_output(self, output_dir: str | Path | None) -> None:
        """An ``output_dir`` must be a new or empty folder outside the input."""
        if output_dir is not None:
            _check_frame_folder(Path(_absolute(output_dir)), self.data, need_empty=True)

    def evaluate(
        self,
        spec: EvaluationSpec,
        *,
        progress: Callable[[str], None] | None = None,
        output_dir: str | Path | None = None,
    ) -> EvaluationResult:
        """Evaluate ``spec``: the frame stays on disk in ``output_dir`` (new or empty; the
        caller's), else in a new folder the engine removes on ``release`` or when it is
        left; the analyses and the plots' sample come from the merged states."""
        from pokewatch_core.evaluation.runner import EvaluationResult

        run = self.run(spec, output_dir=output_dir, progress=progress)
        result = EvaluationResult(
            run.metrics,
            run.frame,
            spec.model,
            spec.policy,
            dict(spec.metrics),
            spec.test_start,
            run.states,
            frame_dir=run.frame_dir,
            engine_params=run.params,
        )
        result.analyses = run.analyses  # merged already: nothing to compute again
        result.inferred = run.inferred
        result.backtest = run.backtest
        return result

    def run(
        self,
        spec: EvaluationSpec,
        *,
        output_dir: str | Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> DaskEvaluation:
        """Evaluate ``spec`` on the cluster into ``output_dir`` (see ``evaluate``) and return
        what the partitions gave: merged states, metrics, where the frame is."""
        report = progress or (lambda stage: None)
        client = self.client
        assert self._root is not None
        if output_dir is None:
            _make_folder(self._root)
            out = Path(tempfile.mkdtemp(prefix="frame-", dir=self._root))
            self._made.add(out)
            existed = False
        else:
            out = Path(_absolute(output_dir))
            self.check_output(out)
            existed = out.exists()
            _make_folder(out)
        scratch = str(out / SCRATCH)
        try:
            try:
                run = _run(client, self.data, spec, out, scratch, self.partitions,
                           self.gather_rows, report)  # fmt: skip
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            if run.rows and not any(out.glob("part-*.parquet")):
                raise ConfigError(
                    f"the workers wrote the evaluation frame where this machine does not see "
                    f"it ({out}): with a remote scheduler, give a folder both share"
                )
            return run
        except BaseException as exc:
            _remove(out, existed)  # no task is running any more: no half-written dataset
            self._made.discard(out)
            if _killed_worker(exc):
                raise PokeWatchError(
                    f"dask workers died running {exc.task!s:.60} (out of memory? use more "  # type: ignore[attr-defined]
                    "partitions or a higher memory limit per worker)"
                ) from exc
            raise

    def release(self, result: EvaluationResult) -> None:
        """Remove ``result``'s frame folder if the engine made it."""
        folder = result.frame_dir
        if folder is not None and folder in self._made:
            shutil.rmtree(folder, ignore_errors=True)
            self._made.discard(folder)


INPUT_PLACEHOLDER = "<DataFrame>"  # the data's name until the frame is written on open


def _is_frame(data: Any) -> bool:
    """Whether ``data`` is a pandas or a dask DataFrame (not a path)."""
    if isinstance(data, pd.DataFrame):
        return True
    module = type(data).__module__
    return module.startswith("dask") and hasattr(data, "to_parquet")


def _parent(near: Path | None) -> str | None:
    """The folder beside ``near`` (made if missing), or None: the system's temporary folder."""
    if near is None:
        return None
    _make_folder(near.parent)
    return str(near.parent)


def _write_input(table: Any, folder: Path) -> str:
    """Write a DataFrame given as data where the workers read it, in ``folder``: one parquet
    file (pandas) or a folder of them (dask, written by the workers)."""
    if isinstance(table, pd.DataFrame):
        path = folder / "prices.parquet"
        table.to_parquet(path, index=False)
        return str(path)
    table.to_parquet(str(folder / "prices"), write_index=False)
    return str(folder / "prices")


def _absolute(path: str | Path) -> str:
    return os.path.abspath(os.path.expanduser(str(path)))


def _check_frame_folder(out: Path, data: str, *, need_empty: bool) -> None:
    """A frame folder must be a folder (new or, with ``need_empty``, empty) outside the
    input."""
    if out.exists() and (not out.is_dir() or (need_empty and any(out.iterdir()))):
        raise ConfigError(f"{out}: the evaluation frame's folder must be new or empty")
    source = Path(data)
    if source.is_dir() and (out == source or source in out.parents):
        raise ConfigError(f"{out}: the evaluation frame's folder must not be inside the input")


def _make_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the evaluation frame's folder ({exc})") from exc


def evaluate_on_dask(
    data: str | Path,
    spec: EvaluationSpec,
    *,
    output_dir: str | Path,
    scheduler: str = "local",
    partitions: int | None = None,
    gather_rows: int = DEFAULT_GATHER_ROWS,
    workers: int | None = None,
    memory_limit: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> DaskEvaluation:
    """One evaluation of ``spec`` on a ``DaskEngine`` of its own (see there), its frame in
    ``output_dir``: the raw figures of the partitions (benchmarks and tests read them)."""
    engine = DaskEngine(
        data, scheduler=scheduler, partitions=partitions, workers=workers,
        memory_limit=memory_limit, gather_rows=gather_rows,
    )  # fmt: skip
    engine.check_output(output_dir)
    with engine:
        return engine.run(spec, output_dir=output_dir, progress=progress)


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
    spec: EvaluationSpec,
    out: Path,
    scratch: str,
    partitions: int | None,
    gather_rows: int,
    report: Callable[[str], None],
) -> DaskEvaluation:
    metrics, start = spec.metrics, spec.test_start
    _check_workers(client, spec)
    report("reading the input's layout")
    pieces: list[parts.Piece] = client.submit(parts.plan, data, pure=False).result()
    rows = sum(piece.rows for piece in pieces)
    threads = sum(client.nthreads().values())
    # no more partitions than rows: the others would be empty tasks
    n = min(partitions or parts.default_partitions(rows, threads), max(rows, 1))
    unmerged = parts.stateless(metrics)
    if unmerged and rows > gather_rows:
        raise ConfigError(
            f"metric '{unmerged[0]}' declares no mergeable state and the input's {rows} rows "
            f"exceed the {gather_rows} the client may gather (raise gather_rows, or give "
            "the metric a statistic)"
        )
    if unmerged and not spec.backtest.is_default:
        raise ConfigError(
            f"metric '{unmerged[0]}' declares no mergeable state: a backtest on the dask engine "
            "needs every metric to declare a statistic (or use the local engine)"
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

    if not spec.backtest.is_default and spec.cutoffs is None:
        # cutoffs are calendar dates of the whole data: resolved on every card's dates
        report("reading the dates of every partition")
        found = client.map(parts.partition_days, range(n), scratch=scratch, source=data,
                           pure=False)  # fmt: skip
        try:
            days = [future.result() for future in found]
        except BaseException:
            _settle(client, found)
            raise
        spec = spec.resolved(np.unique(np.concatenate([np.zeros(0, np.int64), *days])), data)
    tasks = client.map(
        parts.evaluate_bucket,
        range(n),
        output_dir=str(out),
        scratch=scratch,
        spec=spec,
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
    figures = None
    if spec.cutoffs is not None and not spec.cutoffs.one_step:
        pooled, by_horizon, by_cutoff = finalize_backtest(metrics, merged, spec.cutoffs, {})
        figures = BacktestFigures(spec.cutoffs, by_horizon, by_cutoff)
        ordered = figures.metric_keys({name: v.value for name, v in pooled.items()})
        analyses = AnalysisStatistics.of(metric_statistics(metrics).values()).analyses(merged)
        run = DaskEvaluation(ordered, merged, analyses, out, n, total, None, backtest=figures)
        run.inferred = inferred_of(pooled)
        return run
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
    # the workers' spill and scratch files in a temporary folder, not ./dask-scratch-space
    scratch = temporary_folder("dask")
    try:
        try:
            cluster = _local_cluster(workers, memory_limit, scratch)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        try:
            yield str(cluster.scheduler_address)
        finally:
            cluster.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _local_cluster(workers: int | None, memory_limit: str | None, scratch: str) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        local_directory=scratch,
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


def _check_workers(client: Client, spec: EvaluationSpec) -> None:
    """Every worker must run this pokewatch and import every component's module (a plugin's
    distribution installed in each worker's environment)."""
    from pokewatch_core.version import __version__

    components: list[Component] = [spec.model, spec.policy, *spec.metrics.values()]
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
