"""Card-partitioned evaluation, the engine-free half of the dask engine: plan the input files,
route rows to partitions by a stable hash of ``card_id`` through a scratch folder, evaluate one
partition into its evaluation frame and metric states, merge and finalize states.

Nothing here imports dask: each function is a task a worker runs (or a step the client runs
on small results), and is tested without a cluster.

Routing: a card's bucket is ``hash(str(card_id)) % partitions`` with pandas' fixed-key
``hash_array`` (the same on every machine and in every process, unlike Python's salted
``hash``), over the id as ``prepare_prices`` makes it text, so a card whose id is stored as
``7`` in one file and ``"7"`` in another still lands in one partition.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pokewatch_core.components import SIGNALS, Metric
from pokewatch_core.data.tables import (
    CSV_SUFFIXES,
    DATE,
    ID,
    PARQUET_SUFFIXES,
    PREDICTED,
    PRICE,
    REQUIRED,
    SIGNAL,
    check_file_type,
    csv_options,
    prepare_prices,
)
from pokewatch_core.errors import DataError

if TYPE_CHECKING:
    from pokewatch_core.evaluation.spec import EvaluationSpec
from pokewatch_core.evaluation.scoring import (
    States,
    metric_states,
    metric_statistics,
    reads_statistic,
    statistic_states,
)

BATCH_ROWS = 1 << 20  # rows a routing task reads at a time
TASK_ROWS = 1 << 22  # rows of one parquet file one routing task takes (whole row groups)
PARTITION_ROWS = 1_000_000  # the default partition size aimed at
PART = "part-{:05d}.parquet"  # a partition's file in the evaluation frame dataset


@dataclass(frozen=True)
class Piece:
    """A part of the input one routing task reads: a CSV file, or row groups of a parquet
    file (``row_groups`` None: all)."""

    path: str
    kind: str  # "parquet" or "csv"
    rows: int  # rows (a CSV file's are counted as its lines after the header)
    row_groups: tuple[int, ...] | None = None


def input_files(data: str) -> list[Path]:
    """The files of ``data``: one parquet/CSV file, a folder of parquet files (searched
    recursively, hidden and ``_``-prefixed names skipped) or a glob pattern."""
    path = Path(data)
    if any(ch in data for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(data, recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"{data}: no file matches the pattern")
        return found
    if path.is_dir():
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in PARQUET_SUFFIXES
            and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
        )
        if not found:
            raise DataError(f"{data}: folder holds no parquet file (.parquet, .pq, .parq)")
        return found
    if not path.exists():
        raise DataError(f"{data}: no such file")
    check_file_type(path)  # a FIFO would block the reading worker forever
    return [path]


def plan(data: str) -> list[Piece]:
    """The pieces of ``data`` for the routing tasks, with their row counts; every file is
    checked to be readable and to hold a ``card_id`` column."""
    pieces: list[Piece] = []
    for path in input_files(data):
        suffix = path.suffix.lower()
        if suffix in CSV_SUFFIXES:
            pieces.append(_csv_piece(path))
        elif suffix in PARQUET_SUFFIXES or _is_parquet(path):
            pieces.extend(_parquet_pieces(path))
        else:
            raise DataError(f"{path}: unsupported file type '{suffix}' (use .parquet or .csv)")
    return pieces


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _parquet_pieces(path: Path) -> list[Piece]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises many types for broken files
        raise DataError(f"{path}: cannot read parquet file: {_line(exc)}") from exc
    _require_columns(path, list(meta.schema.to_arrow_schema().names))
    pieces, groups, rows = [], [], 0
    for group in range(meta.num_row_groups):
        groups.append(group)
        rows += meta.row_group(group).num_rows
        if rows >= TASK_ROWS:
            pieces.append(Piece(str(path), "parquet", rows, tuple(groups)))
            groups, rows = [], 0
    if groups or not pieces:
        pieces.append(Piece(str(path), "parquet", rows, tuple(groups)))
    return pieces


def _csv_piece(path: Path) -> Piece:
    sep = CSV_SUFFIXES[path.suffix.lower()]
    try:
        with path.open("rb") as fh:
            header = fh.readline().decode("utf-8", "replace").rstrip("\r\n")
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {_line(exc)}") from exc
    columns = [c.strip().strip('"') for c in header.split(sep)]
    _require_columns(path, columns)
    return Piece(str(path), "csv", lines)


def _require_columns(path: Path, columns: list[str]) -> None:
    """Every file must hold the required columns: one without them would silently add
    missing values to the cards it holds."""
    for column in REQUIRED:
        if column not in columns:
            raise DataError(
                f"{path}: missing required column {column!r} (columns: {', '.join(columns)})"
            )


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


def buckets(ids: pd.Series[Any] | Any, partitions: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The partition of each row's card: a stable hash of the id's text, modulo
    ``partitions`` (missing ids go to partition 0, where validation names them). ``ids``: a
    pandas Series or an Arrow array of one batch; each distinct id is hashed once."""
    if isinstance(ids, pd.Series):
        raw_codes, uniques = pd.factorize(ids)
        codes, labels = np.asarray(raw_codes), pd.Index(uniques)
    else:  # Arrow: encoded in C++, only the distinct ids become Python strings
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        encoded = pc.dictionary_encode(ids)
        codes = encoded.indices.fill_null(-1).to_numpy().astype(np.int64)
        labels = pd.Index(encoded.dictionary.to_pandas())
    text = labels.astype("str").to_numpy(dtype=object)  # as prepare_prices reads an id
    hashed = pd.util.hash_array(text) % np.uint64(partitions)
    out = hashed.astype(np.int64).take(codes) if len(text) else np.zeros(len(codes), np.int64)
    out[codes < 0] = 0
    return out


def _batches(piece: Piece) -> Iterator[Any]:
    """The piece's rows as Arrow tables, ``BATCH_ROWS`` at a time (a CSV's card ids as text,
    as ``read_table`` reads them)."""
    import pyarrow as pa

    try:
        if piece.kind == "csv":
            sep = CSV_SUFFIXES[Path(piece.path).suffix.lower()]
            options = csv_options(piece.path, sep, ID)
            chunks = pd.read_csv(piece.path, sep=sep, chunksize=BATCH_ROWS, **options)
            for chunk in chunks:
                yield pa.Table.from_pandas(chunk, preserve_index=False)
            return
        import pyarrow.parquet as pq

        reader = pq.ParquetFile(piece.path)
        groups = list(piece.row_groups) if piece.row_groups is not None else None
        for batch in reader.iter_batches(batch_size=BATCH_ROWS, row_groups=groups):
            yield pa.Table.from_batches([batch])
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{piece.path}: cannot read {piece.kind} file: {_line(exc)}") from exc


def route(piece: Piece, task: int, partitions: int, scratch: str) -> int:
    """Routing task: read ``piece`` batch by batch and write each batch's rows of partition
    ``k`` to ``scratch/k/<task>-<batch>.parquet``; returns the rows read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    made: set[int] = set()
    for number, table in enumerate(_batches(piece)):
        target = buckets(table.column(ID), partitions)
        # small ints sort by radix: linear in the rows
        small = target.astype(np.int16) if partitions <= np.iinfo(np.int16).max else target
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(target[order], np.arange(partitions + 1))
        grouped = table.take(pa.array(order))
        for k in np.flatnonzero(np.diff(bounds)):
            folder = Path(scratch) / str(k)
            if k not in made:
                folder.mkdir(parents=True, exist_ok=True)
                made.add(int(k))
            part = grouped.slice(bounds[k], bounds[k + 1] - bounds[k])
            pq.write_table(part, folder / f"{task:05d}-{number:05d}.parquet")
        rows += table.num_rows
    return rows


def read_partition(scratch: str, k: int) -> pd.DataFrame | None:
    """The rows routed to partition ``k`` (None if none were)."""
    import pyarrow.parquet as pq

    folder = Path(scratch) / str(k)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    # one file at a time: files of different inputs may disagree on a column's type
    frame: pd.DataFrame = pd.concat(
        [pq.read_table(f).to_pandas() for f in files], ignore_index=True
    )
    return frame


# ---- one partition's evaluation ---------------------------------------------------------------


def stateless(metrics: Mapping[str, Metric]) -> list[str]:
    """The names of the metrics that declare no statistic (no mergeable state)."""
    return [name for name, metric in metrics.items() if not reads_statistic(metric)]


def evaluate_partition(table: pd.DataFrame, spec: EvaluationSpec) -> tuple[pd.DataFrame, States]:
    """The evaluation frame of a validated partition (whole cards) and its states by statistic:
    the metrics' and the analyses' (overview, signal quality, strategy, per-card table), the
    plots' sample and the rows' digest. A partition with no row in the scored period has them
    over no scored rows."""
    from pokewatch_core.analysis.analyses import AnalysisStatistics
    from pokewatch_core.analysis.digest import RowsDigest
    from pokewatch_core.analysis.sample import Sample
    from pokewatch_core.evaluation.runner import evaluate_prepared

    stateful = {name: m for name, m in spec.metrics.items() if reads_statistic(m)}
    test_start = spec.test_start
    wanted = AnalysisStatistics.of(metric_statistics(stateful).values()).all()
    if test_start is not None and not (table[DATE] >= test_start).to_numpy().any():
        return _unscored_partition(table, stateful, [*wanted, RowsDigest()])
    result = evaluate_prepared(table, spec.with_metrics(stateful))
    states = dict(result.states)
    extra = [*wanted, Sample(), RowsDigest()]  # the plots draw the sample; the digest
    statistic_states(extra, result.scored_frame, result.history, states)  # names the data
    return result.frame, states


def _unscored_partition(
    table: pd.DataFrame, metrics: Mapping[str, Metric], statistics: list[Any]
) -> tuple[pd.DataFrame, States]:
    """A partition whose cards all end before ``test_start``: no row is predicted or scored,
    but its cards still count where the statistics read the history (the MASE scale's
    one-step changes) and in the overview and digest of the data."""
    frame = table.copy(deep=False)
    frame.insert(3, PREDICTED, np.full(len(frame), np.nan))
    signals = pd.Categorical([None] * len(frame), categories=list(SIGNALS))
    frame.insert(4, SIGNAL, pd.Series(signals, index=frame.index))
    history, none = frame[[ID, DATE, PRICE]], frame.iloc[:0]
    states = metric_states(metrics, none, history)
    return frame, statistic_states(statistics, none, history, states)


def partition_days(k: int, scratch: str, source: str) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Task: the distinct day numbers of partition ``k``'s validated rows (a backtest's
    cutoffs are resolved on the dates of every partition together)."""
    from pokewatch_core.evaluation.cutoffs import distinct_days

    raw = read_partition(scratch, k)
    if raw is None:
        return np.zeros(0, dtype=np.int64)
    return distinct_days(prepare_prices(raw, f"{source} (partition {k})", part=True)[DATE])


def default_partitions(rows: int, threads: int) -> int:
    """Partitions for ``rows`` input rows on ``threads`` worker threads: about
    ``PARTITION_ROWS`` each, and at least two per thread so that the work balances."""
    return max(2 * threads, math.ceil(rows / PARTITION_ROWS), 1)


def evaluate_bucket(
    k: int,
    scratch: str,
    output_dir: str,
    spec: EvaluationSpec,
    source: str,
    keep_frame: bool,
) -> tuple[int, States, pd.DataFrame | None]:
    """Partition task: read partition ``k``, validate it, evaluate it, write its evaluation
    frame to ``output_dir`` and return its row count, its states (``evaluate_partition``) and
    (``keep_frame``) its frame."""
    from pokewatch_core.plugins.registry import get_plugins

    get_plugins()  # this worker's registry: a failing plugin is named by its distribution
    raw = read_partition(scratch, k)
    if raw is None:
        return 0, {}, None
    table = prepare_prices(raw, f"{source} (partition {k})", part=True)
    del raw
    frame, states = evaluate_partition(table, spec)
    path = Path(output_dir) / PART.format(k)
    tmp = path.with_name("." + path.name)
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # a part is there whole or not at all
    return len(frame), states, frame if keep_frame else None
