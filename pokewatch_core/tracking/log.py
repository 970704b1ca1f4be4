"""One evaluation logged as one MLflow run (docs/mlflow.md): params, dataset, plots, summary,
tables, the model and the metrics linked to both, FINISHED only when all of it is logged; a
failed run is ended with its stage and the results are kept beside the user.

mlflow is imported inside functions only, as everywhere in this package."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import tempfile
import time
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokewatch_core.card_ids import codes_of
from pokewatch_core.data.tables import DATE, ID, PREDICTED, PRICE, SIGNAL
from pokewatch_core.errors import ConfigError, TrackingError
from pokewatch_core.files import temporary_directory, write_report_csv
from pokewatch_core.plugins.registry import get_plugins
from pokewatch_core.tracking.fair_price import FAIR
from pokewatch_core.tracking.lifecycle import FAILED_STAGE_TAG as FAILED_STAGE_TAG
from pokewatch_core.tracking.lifecycle import RunLifecycle, run_lifecycle
from pokewatch_core.tracking.store import (
    NOTE_TAG,
    Store,
    check_run_name,
    check_user_tags,
    retry,
    run_owner_tags,
    run_target,
    store_init_lock,
    use_store,
)
from pokewatch_core.version import __version__

if TYPE_CHECKING:
    import pandas as pd

    from pokewatch_core.analysis.digest import RowsHash
    from pokewatch_core.components import Model
    from pokewatch_core.evaluation.runner import EvaluationResult

FAILED_RUNS_DIR = "pokewatch-failed-runs"
SUMMARY_ARTIFACT = "summary/evaluation_summary.txt"
MODEL_CODE = Path(__file__).with_name("pyfunc.py")  # models-from-code: MLflow copies this file


@dataclass(frozen=True)
class LoggedRun:
    """Where an evaluation was logged."""

    run_id: str
    experiment_id: str
    experiment_name: str
    tracking_uri: str
    model_uri: str | None = None
    registered_model: str | None = None
    registered_version: str | None = None


def model_artifact_name(model: Model) -> str:
    """The name of the logged model: the model's own ``artifact_name``, else
    ``<name>_model`` (docs/mlflow.md)."""
    return model.artifact_name or f"{model.name}_model"


def plugin_versions(result: EvaluationResult) -> dict[str, str]:
    """``{distribution: version}`` of the plugins that provided the components used."""
    plugins = get_plugins()
    used = [("model", result.model.name), ("policy", result.policy.name)]
    used += [("metric", name) for name in result.metric_components]
    out: dict[str, str] = {}
    for kind, name in used:
        registry = plugins.registry(kind)
        if name not in registry:
            continue  # a component passed as an object, not from a plugin
        info = plugins.plugins.get(registry.registration(name).plugin)
        if info is not None:
            out[info.distribution or info.name] = info.version or "unknown"
    return out


def _pip_requirements(result: EvaluationResult) -> list[str]:
    import mlflow

    reqs = {"pokewatch": f"pokewatch=={__version__}", "mlflow": f"mlflow=={mlflow.__version__}"}
    for dist, version in plugin_versions(result).items():
        reqs.setdefault(dist, f"{dist}=={version}" if version != "unknown" else dist)
    return list(reqs.values())


def _signature() -> Any:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    # ids of any type pandas reads (text, categorical, integer) are taken, as text: MLflow's
    # "string" enforcement refuses a categorical or integer column
    inputs = Schema([ColSpec(AnyType(), ID), ColSpec(AnyType(), DATE, required=False)])
    outputs = Schema(
        [
            ColSpec("string", ID),
            ColSpec("datetime", DATE),
            ColSpec("double", PRICE),
            ColSpec("double", FAIR),
            ColSpec("string", SIGNAL),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# MLflow 3 copies uv.lock/pyproject.toml of the working directory into every model it logs
# (and `--env-manager uv` then tries to `uv sync` that project from the model folder). The
# model's requirements.txt names what restores it; the uv files only add weight.
NO_UV_FILES = {"MLFLOW_UV_AUTO_DETECT": "false", "MLFLOW_LOG_UV_FILES": "false"}


def _save_portable_pyfunc(path: str, mlflow_model: Any, **kwargs: Any) -> None:
    """``mlflow.pyfunc.save_model``, then the MLmodel without the paths of the machine that
    logged it: MLflow records where the code file (the checkout or site-packages) and each
    artifact (a temporary folder) were copied from, and reads neither back (it loads both by
    their place in the model folder)."""
    import mlflow

    mlflow.pyfunc.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
    flavor = mlflow_model.flavors[mlflow.pyfunc.FLAVOR_NAME]
    for artifact in (flavor.get("artifacts") or {}).values():
        artifact.pop("uri", None)
    if flavor.get("model_code_path"):
        flavor["model_code_path"] = os.path.basename(flavor["model_code_path"])
    mlflow_model.save(os.path.join(path, "MLmodel"))


# A flavor for ``mlflow.models.Model.log``: anything with ``save_model``.
PORTABLE_PYFUNC = types.SimpleNamespace(save_model=_save_portable_pyfunc)


def _log_model(result: EvaluationResult, workdir: Path, description: str) -> Any:
    """Log the model as an MLflow pyfunc (models-from-code) with the run's description."""
    import mlflow
    import pandas as pd

    from pokewatch_core.tracking.fair_price import FairPricer

    pricer = FairPricer(result.model, result.policy, result.frame)
    files = pricer.save(workdir / "model_state")
    codes, cards = codes_of(result.frame[ID])
    example_cards = [str(cards[c]) for c in pd.unique(codes[:10_000])[:3]]
    with _environment(**NO_UV_FILES):
        info = retry(
            mlflow.models.Model.log,  # what mlflow.pyfunc.log_model calls, with our flavor
            artifact_path=None,
            flavor=PORTABLE_PYFUNC,
            flavor_name="pyfunc.ModelFromCode",  # the LoggedModel's flavor, as log_model's
            name=model_artifact_name(result.model),
            python_model=str(MODEL_CODE),
            artifacts={k: str(v) for k, v in files.items()},
            pip_requirements=_pip_requirements(result),
            signature=_signature(),
            input_example=pd.DataFrame({ID: example_cards}),
        )
    # the logged model's page shows the same description
    retry(mlflow.set_logged_model_tags, info.model_id, {NOTE_TAG: description})
    return info


def dataset_digest(table: pd.DataFrame) -> str:
    """The digest of every row the evaluation reads (``card_id, date, market_price``), of
    the first 10 000 rows of every column, of the length and of the column names: any
    changed price changes it (``gate`` relies on that), at a vectorised hash per row."""
    import pandas as pd

    md5 = hashlib.md5(usedforsecurity=False)
    if {ID, DATE, PRICE} <= set(table.columns):
        codes, cards = codes_of(table[ID])  # the ids as codes and their text: no string pass
        rows = pd.DataFrame({ID: codes, DATE: table[DATE].to_numpy(), PRICE: table[PRICE]})
        md5.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
        md5.update(pd.util.hash_pandas_object(pd.Series(cards), index=False).to_numpy().tobytes())
    md5.update(pd.util.hash_pandas_object(table.head(10_000), index=False).to_numpy().tobytes())
    md5.update(str(len(table)).encode())
    md5.update(",".join(map(str, table.columns)).encode())
    return md5.hexdigest()[:8]


SCHEMA_ROWS = 1_000  # the dataset's schema is read from its validated dtypes on this many rows


def make_dataset(result: EvaluationResult, data_source: str) -> Any:
    """The evaluated table as an MLflow dataset, made without a pass over all rows in Python:
    the digest hashes vectorised (see ``dataset_digest``), and the schema is inferred
    from the first rows of the validated (typed) table."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.models import infer_signature

    rows = result.analyses.overview.rows

    class _Dataset(PandasDataset):  # type: ignore[misc]
        @property
        def schema(self) -> Any:
            return infer_signature(self.df.head(SCHEMA_ROWS)).inputs

        @property
        def profile(self) -> Any:
            return {"num_rows": rows, "num_elements": rows * self.df.shape[1]}

    if result.in_memory:
        table = result.frame.drop(columns=[PREDICTED, SIGNAL])
        digest = dataset_digest(table)
    else:  # the frame is on disk, in parts: its first rows give the schema
        table, digest = _partitioned_head(result)
    with warnings.catch_warnings():  # local paths match two MLflow sources; int-column hints
        warnings.simplefilter("ignore", UserWarning)
        dataset = _Dataset(
            df=table,
            source=resolve_dataset_source(data_source),
            targets=PRICE,
            name=Path(data_source).name,
            digest=digest,
        )
    return dataset


def _partitioned_head(result: EvaluationResult) -> tuple[pd.DataFrame, str]:
    """The first rows of a partitioned evaluation frame's input columns (for the schema),
    and the digest of the input's rows the partitions merged (``RowsHash``: the same for
    the same rows however they are partitioned or ordered)."""
    import pyarrow.parquet as pq

    from pokewatch_core.analysis.digest import RowsDigest

    assert result.frame_dir is not None
    first = min(result.frame_dir.glob("part-*.parquet"))
    head = next(pq.ParquetFile(first).iter_batches(batch_size=SCHEMA_ROWS)).to_pandas()
    table = head.drop(columns=[PREDICTED, SIGNAL])
    return table, rows_digest(result.states[RowsDigest()], list(map(str, table.columns)))


def rows_digest(rows: RowsHash, columns: list[str]) -> str:
    """The dataset digest of a dask run: its rows' order-free hash and its columns."""
    md5 = hashlib.md5(usedforsecurity=False)
    md5.update(rows.hexdigest().encode())
    md5.update(",".join(columns).encode())
    return md5.hexdigest()[:8]


def _log_dataset(result: EvaluationResult, data_source: str) -> Any:
    """Log the evaluated table as the active run's dataset input (see ``make_dataset``)."""
    import mlflow

    dataset = make_dataset(result, data_source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        retry(mlflow.log_input, dataset, context="evaluation")
    return dataset


TABLES = ("tables/metrics_by_card.csv", "tables/predictions.parquet")
PARTITIONED_FRAME = "tables/predictions"  # a folder of part-NNNNN.parquet (dask engine)


def log_artifacts(
    result: EvaluationResult, run_id: str, workdir: Path, data_source: str
) -> list[str]:
    """Log the evaluation's plots, summary and tables into run ``run_id``; returns their
    artifact paths (plots first)."""
    from mlflow.tracking import MlflowClient

    from pokewatch_core.evaluation import plots
    from pokewatch_core.evaluation.summary import evaluation_summary

    client = MlflowClient()
    figures = plots.evaluation_figures(result)
    for path, fig in figures.items():
        retry(client.log_figure, run_id, fig, path)
    retry(client.log_text, run_id, evaluation_summary(result, data_source), SUMMARY_ARTIFACT)
    tables = workdir / "tables"
    tables.mkdir()
    write_report_csv(result.analyses.by_card, workdir / TABLES[0])
    written = write_backtest_tables(result, workdir)
    if result.frame_dir is None:
        result.frame.to_parquet(workdir / TABLES[1], index=False)
        retry(client.log_artifacts, run_id, str(tables), "tables")
        return [*figures, SUMMARY_ARTIFACT, *TABLES, *written]
    # the workers wrote the frame as a partitioned dataset: logged as that folder
    retry(client.log_artifacts, run_id, str(tables), "tables")
    retry(client.log_artifacts, run_id, str(result.frame_dir), PARTITIONED_FRAME)
    return [*figures, SUMMARY_ARTIFACT, TABLES[0], *written, PARTITIONED_FRAME + "/"]


BACKTEST_TABLES = (
    "tables/metrics_by_horizon.csv",
    "tables/metrics_by_cutoff.csv",
    "tables/forecasts.parquet",
)


def write_backtest_tables(result: EvaluationResult, workdir: Path) -> list[str]:
    """A backtest's tables under ``workdir/tables``: metrics by horizon and by cutoff, and
    every forecast (written a horizon at a time); returns their artifact paths."""
    figures = result.backtest
    if figures is None:
        return []
    import pandas as pd

    by_horizon = pd.DataFrame.from_dict(figures.by_horizon, orient="index")
    by_horizon.index.name = "horizon"
    write_report_csv(by_horizon.reset_index(), workdir / BACKTEST_TABLES[0])
    write_report_csv(figures.by_cutoff, workdir / BACKTEST_TABLES[1])
    if figures.forecasts is None:  # the dask engine keeps no forecasts on the client
        return list(BACKTEST_TABLES[:2])
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for table in result.forecast_tables():
            batch = pa.Table.from_pandas(table, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(workdir / BACKTEST_TABLES[2], batch.schema)
            writer.write_table(batch)
    finally:
        if writer is not None:
            writer.close()
    return list(BACKTEST_TABLES)


def horizon_steps(result: EvaluationResult) -> list[Any]:
    """Each metric against the horizon as MLflow metric steps (``<metric>_by_horizon``, step
    ``h``), for the run page's chart; none for a one-step run."""
    from mlflow.entities import Metric

    figures = result.backtest
    if figures is None or figures.cutoffs.horizon == 1:
        return []
    stamp = int(time.time() * 1000)
    return [
        Metric(f"{name}{BY_HORIZON}", _clean_metric(value), stamp, h)
        for h, values in figures.by_horizon.items()
        for name, value in values.items()
    ]


BY_HORIZON = "_by_horizon"  # the suffix of a metric's chart against the horizon


def _clean_metric(value: float) -> float:
    return value if math.isfinite(value) else float("nan")


def metric_entities(metrics: dict[str, float]) -> list[Any]:
    """``metrics`` as MLflow metric entities for a client's ``log_batch``: one timestamp,
    step 0, non-finite values as NaN."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    return [Metric(k, _clean_metric(v), stamp, 0) for k, v in metrics.items()]


def run_description(result: EvaluationResult, data_source: str) -> str:
    """A run's short description: model, policy, data set and its first three metrics."""
    from pokewatch_core.evaluation.summary import format_metric

    headline = ", ".join(
        f"{name} {format_metric(value, result.metric_components[name].unit)}"
        for name, value in [(n, result.metrics[n]) for n in result.metric_components][:3]
    )
    return f"{result.model.name} with policy {result.policy.name} on {Path(data_source).name}" + (
        f": {headline}" if headline else ""
    )


# Tags of an `mlflow run` run that say where the code came from, copied to the evaluation run
# when that one is logged beside it.
SOURCE_TAG_PREFIXES = ("mlflow.source.", "mlflow.project.", "mlflow.gitRepoURL", "mlflow.user")
PROJECTS_RUN_TAG = "pokewatch.projects_run_id"
EVALUATION_RUN_TAG = "pokewatch.evaluation_run_id"


def _source_tags(enclosing: Any) -> dict[str, str]:
    tags = {k: v for k, v in enclosing.data.tags.items() if k.startswith(SOURCE_TAG_PREFIXES)}
    tags[PROJECTS_RUN_TAG] = enclosing.info.run_id
    return tags


def _point_to(enclosing: Any, run: Any) -> None:
    """Leave a note on the enclosing ``mlflow run`` run naming the run with the evaluation."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment(run.info.experiment_id)
    note = (
        f"PokeWatch logged this evaluation in experiment '{experiment.name}', "
        f"run {run.info.run_id}."
    )
    client.set_tag(enclosing.info.run_id, EVALUATION_RUN_TAG, run.info.run_id)
    client.set_tag(enclosing.info.run_id, NOTE_TAG, note)


@contextmanager
def _environment_without(key: str) -> Iterator[None]:
    """Hide one environment variable for the duration of the block."""
    saved = os.environ.pop(key, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[key] = saved


def keep_results(
    result: EvaluationResult, run_id: str, data_source: str
) -> tuple[Path | None, str | None]:
    """Save what was computed (metrics, params, predictions, summary) next to the user, in
    ``pokewatch-failed-runs/<run_id>/``: written in a temporary folder and renamed, so the
    folder is complete or absent. Returns ``(folder, None)``, or ``(None, why)`` when it could
    not be written (read-only directory, full disk); never raises an ``Exception``."""
    import json
    import shutil

    from pokewatch_core.evaluation.summary import evaluation_summary

    parent = Path(FAILED_RUNS_DIR)
    folder = parent / run_id
    tmp: Path | None = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=parent))
        (tmp / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
        (tmp / "params.json").write_text(json.dumps(result.params, indent=2, default=str))
        if result.frame_dir is None:
            result.frame.to_parquet(tmp / "predictions.parquet", index=False)
        else:  # already on disk, whole: say where
            (tmp / "predictions_folder.txt").write_text(f"{result.frame_dir}\n")
        (tmp / "evaluation_summary.txt").write_text(evaluation_summary(result, data_source))
        os.replace(tmp, folder)
    except Exception as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return None, describe_failure(exc, [("the folder", parent)])
    return folder, None


Places = list[tuple[str, Path]]  # (what it is, its folder or file): where a run writes


def describe_failure(exc: BaseException, places: Places | None = None) -> str:
    """One line naming the real cause of ``exc``: a full disk or an unwritable folder when an
    ``OSError`` in its chain says so (or SQLite's "database or disk is full"), else the
    exception itself. A full disk is named by the ``places`` on it (see ``full_places``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            if current.errno in (errno.ENOSPC, errno.EDQUOT):
                return f"No space left on device{full_places(current.filename, places or [])}"
            if current.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and current.filename:
                return f"{_unwritable(Path(os.fsdecode(current.filename)))} is not writable"
        current = current.__cause__ or current.__context__
    text = " ".join(str(exc).split())
    if isinstance(exc, TrackingError):  # PokeWatch's own line, such as a server gone
        return text
    if "No space left on device" in text or "database or disk is full" in text:
        return f"No space left on device{full_places(None, places or [])}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def full_places(filename: Any, places: Places) -> str:
    """What a full disk holds, for the error line: `` (the artifact store X is on the full
    disk)``. The full disk is the one of ``filename`` (the file a write failed on) when it is
    known and holds one of ``places``, else the disk of ``places`` with the least free space
    (the first of them on a tie: the place the failed stage writes first). Without a place on
    it, the file is named as it is; with neither, nothing."""
    found: list[tuple[str, Path, int]] = []
    for label, path in places:
        existing = _existing(path)
        if existing is not None:
            found.append((label, path, os.stat(existing).st_dev))
    device = None
    if filename is not None:
        existing = _existing(Path(os.fsdecode(filename)))
        device = os.stat(existing).st_dev if existing is not None else None
    if device is None or not any(d == device for *_, d in found):
        if filename is not None or not found:
            return f" ({os.fsdecode(filename)})" if filename is not None else ""
        device = min(found, key=lambda f: _free_bytes(f[1]))[2]
    named = [f"{label} {path}" for label, path, d in found if d == device]
    verb = "is" if len(named) == 1 else "are"
    return f" ({' and '.join(named)} {verb} on the full disk)"


def _existing(path: Path) -> Path | None:
    """``path``, or its nearest existing parent (None if nothing of it exists)."""
    target = path if path.is_absolute() else Path.cwd() / path
    while not target.exists():
        if target == target.parent:
            return None
        target = target.parent
    return target


def _free_bytes(path: Path) -> int:
    try:
        stats = os.statvfs(_existing(path) or path)
    except OSError:
        return 2**63
    return stats.f_bavail * stats.f_frsize


def run_places(uri: str, artifact_uri: str | None, stage: str) -> Places:
    """Where a run of store ``uri`` with artifacts at ``artifact_uri`` writes, the places the
    failed ``stage`` writes first: the artifact store (when on this machine), the SQLite
    database, the temporary folder."""
    from urllib.parse import unquote, urlparse

    from pokewatch_core.tracking.store import sqlite_path

    places: Places = []
    if artifact_uri:
        parsed = urlparse(artifact_uri)
        if parsed.scheme in ("", "file"):
            places.append(("the artifact store", Path(unquote(parsed.path))))
    db = sqlite_path(uri)
    if db is not None:
        store = ("the tracking store", db)
        into_store = stage in ("params", "metrics", "registry", "end")
        places.insert(0, store) if into_store else places.append(store)
    places.append(("the temporary folder", Path(tempfile.gettempdir())))
    return places


def _unwritable(path: Path) -> str:
    """The folder to blame for a denied write to ``path``: the nearest existing one (the file
    itself if it exists), shown relative to the working directory when inside it."""
    target = path if path.is_absolute() else Path.cwd() / path
    while not target.exists() and target != target.parent:
        target = target.parent
    try:
        return f"./{target.relative_to(Path.cwd())}" if target != Path.cwd() else str(target)
    except ValueError:
        return str(target)


def log_evaluation(
    result: EvaluationResult,
    *,
    experiment_name: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    data_source: str = "data",
    tracking_uri: str | Store | None = None,
    register_model: str | None = None,
    alias: str = "champion",
    log_model: bool = True,
) -> LoggedRun:
    """Log ``result`` as one MLflow run: params, metrics, plots, summary, tables, dataset,
    model.

    ``tracking_uri`` is resolved and checked first (``store.reach_store``), unless it is a
    ``Store`` that already was. The run goes to experiment ``experiment_name`` (None:
    ``pokewatch_baseline``). Inside ``mlflow run`` (``MLFLOW_RUN_ID`` set) the evaluation is
    logged into the Projects run when that run is in the requested experiment (or, with None,
    when ``mlflow run`` was given an experiment); otherwise into a new run in the requested
    experiment that carries the Projects run's source tags, and the Projects run gets a note
    pointing to it.

    The run ends FINISHED only when everything is logged. If anything fails after the run
    started, the run is ended FAILED (KILLED on an interrupt or signal) with the tag
    ``pokewatch.failed_stage`` (when the store still answers), the evaluation results are kept
    in ``pokewatch-failed-runs/<run_id>/`` (when the working directory is writable), and a
    ``TrackingError`` names the incomplete run and the cause.
    """
    check_user_tags(tags)
    check_run_name(run_name)
    if register_model and not result.in_memory:
        raise ConfigError(
            "register_model: a dask-engine evaluation logs no model (its frame stays "
            "partitioned on disk); register one trained with the local engine"
        )
    effective_uri = use_store(tracking_uri)
    run, enclosing, rename = _start_run(result, effective_uri, experiment_name, run_name, tags)
    lifecycle = run_lifecycle(run.info.run_id)
    try:
        with lifecycle, temporary_directory("run") as tmp:
            if enclosing is not None:
                retry(_point_to, enclosing, run)
            logged = log_run_contents(
                result,
                run,
                Path(tmp),
                data_source,
                lifecycle,
                register_model=register_model,
                alias=alias,
                log_model=log_model,
                rename=rename,
            )
    except Exception as exc:  # the run is ended FAILED: keep the results, name the cause
        artifacts = run.info.artifact_uri
        raise _incomplete(result, lifecycle, effective_uri, artifacts, data_source, exc) from exc
    return logged


def _start_run(
    result: EvaluationResult,
    uri: str,
    experiment_name: str | None,
    run_name: str | None,
    tags: dict[str, str] | None,
) -> tuple[Any, Any, str | None]:
    """Start the active run in the experiment asked for (see ``run_target``) of store ``uri``,
    tagged with the version, the plugins, ``tags`` and its owner. Returns the run, the
    enclosing ``mlflow run`` run it is logged beside (or None) and the name to give a resumed
    Projects run (or None)."""
    import mlflow

    with store_init_lock(uri):
        experiment_id, enclosing = retry(run_target, experiment_name)
    all_tags = {"pokewatch.version": __version__}
    if enclosing is not None:
        all_tags.update(_source_tags(enclosing))
        run_name = run_name or enclosing.info.run_name
    all_tags.update({f"pokewatch.plugin.{d}": v for d, v in plugin_versions(result).items()})
    all_tags.update(tags or {})
    all_tags.update(run_owner_tags())  # who owns it: see heal_abandoned_runs
    hide = _environment_without("MLFLOW_RUN_ID") if enclosing else contextlib.nullcontext()
    with hide:
        run = retry(mlflow.start_run, experiment_id=experiment_id, run_name=run_name, tags=all_tags)
    resumed = experiment_id is None  # logged into the enclosing `mlflow run` run
    return run, enclosing, run_name if resumed else None


def _incomplete(
    result: EvaluationResult,
    lifecycle: RunLifecycle,
    uri: str,
    artifact_uri: str | None,
    data_source: str,
    exc: Exception,
) -> TrackingError:
    """The error of a run ended at ``lifecycle.stage`` by ``exc``, once its results are kept
    in ``pokewatch-failed-runs/<run_id>/`` (see ``keep_results``). It says FAILED only when
    the store recorded it; else that the run stays RUNNING until it is healed."""
    kept, not_kept = keep_results(result, lifecycle.run_id, data_source)
    where = (
        f"the evaluation results are kept in {kept}"
        if kept
        else f"the evaluation results could not be kept ({not_kept})"
    )
    cause = describe_failure(exc, run_places(uri, artifact_uri, lifecycle.stage))
    if lifecycle.recorded:
        status = f"is incomplete and marked {lifecycle.status}"
    else:
        status = (
            "is incomplete and could not be marked FAILED (the store did not record it): it "
            "stays RUNNING until the next `pokewatch train` or `compare` on this host heals it"
        )
    return TrackingError(
        f"run {lifecycle.run_id} at {uri} {status} (stage {lifecycle.stage}: {cause}); {where}"
    )


def log_run_contents(
    result: EvaluationResult,
    run: Any,
    workdir: Path,
    data_source: str,
    lifecycle: RunLifecycle,
    *,
    register_model: str | None = None,
    alias: str = "champion",
    log_model: bool = True,
    rename: str | None = None,
) -> LoggedRun:
    """Log into the active run ``run`` what a ``pokewatch train`` run holds: description and
    params, the dataset, the plots, summary and tables, the model, the metrics linked to both,
    and the registry version when ``register_model`` names one. ``lifecycle.stage`` names the
    stage under way; ``workdir`` is an empty folder for the files to log."""
    lifecycle.stage = "params"
    description = _log_params(result, data_source, rename)
    lifecycle.stage = "dataset"
    dataset = _log_dataset(result, data_source)
    lifecycle.stage = "artifacts"
    log_artifacts(result, run.info.run_id, workdir, data_source)
    lifecycle.stage = "model"
    # a partitioned frame is not held anywhere as one table: no servable model (the pyfunc
    # keeps the whole price history); log_evaluation refuses register_model for it
    model = _log_model(result, workdir, description) if log_model and result.in_memory else None
    lifecycle.stage = "metrics"
    _log_metrics(result, model, dataset)
    version = None
    if register_model and model is not None:
        lifecycle.stage = "registry"
        version = _register(str(model.model_uri), register_model, alias)
    return _logged_run(run, model, register_model if version else None, version)


def _log_params(result: EvaluationResult, data_source: str, rename: str | None) -> str:
    """The run's name (when given), its description and its params; returns the description."""
    import mlflow

    if rename:
        retry(mlflow.set_tag, "mlflow.runName", rename)
    description = run_description(result, data_source)
    retry(mlflow.set_tag, NOTE_TAG, description)
    retry(mlflow.log_params, {k: str(v) for k, v in result.params.items()})
    return description


def _log_metrics(result: EvaluationResult, model: Any, dataset: Any) -> None:
    """The metrics, linked to the logged model (if any) and the evaluated dataset (MLflow 3
    LoggedModel metrics)."""
    import mlflow

    retry(
        mlflow.log_metrics,
        {k: _clean_metric(v) for k, v in result.metrics.items()},
        model_id=model.model_id if model is not None else None,
        dataset=dataset,
    )
    steps = horizon_steps(result)
    if steps:
        from mlflow.tracking import MlflowClient

        run_id = mlflow.active_run().info.run_id
        for start in range(0, len(steps), 1000):  # MLflow's log_batch takes 1000 at most
            retry(MlflowClient().log_batch, run_id, metrics=steps[start : start + 1000])


def _register(model_uri: str, name: str, alias: str) -> str:
    """Register the logged model as a new version of ``name`` and point ``alias`` at it;
    returns the version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    registered = retry(mlflow.register_model, model_uri, name)
    version = str(registered.version)
    retry(MlflowClient().set_registered_model_alias, name, alias, version)
    return version


def _logged_run(run: Any, model: Any, registered: str | None, version: str | None) -> LoggedRun:
    import mlflow

    experiment = retry(mlflow.get_experiment, run.info.experiment_id)
    return LoggedRun(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        experiment_name=experiment.name if experiment else "",
        tracking_uri=mlflow.get_tracking_uri(),
        model_uri=str(model.model_uri) if model is not None else None,
        registered_model=registered,
        registered_version=version,
    )
