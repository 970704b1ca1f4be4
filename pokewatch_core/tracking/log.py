"""One evaluation logged as one MLflow run (DESIGN §5): params, dataset, plots, summary,
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
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokewatch_core.card_ids import codes_of
from pokewatch_core.data.tables import DATE, ID, PREDICTED, PRICE, SIGNAL
from pokewatch_core.errors import ConfigError, TrackingError
from pokewatch_core.interrupts import check_interrupted
from pokewatch_core.plugins.registry import get_plugins
from pokewatch_core.tracking.fair_price import FAIR
from pokewatch_core.tracking.store import (
    NOTE_TAG,
    Store,
    _retry,
    _store_init_lock,
    _target,
    run_owner_tags,
    use_store,
)
from pokewatch_core.version import __version__

if TYPE_CHECKING:
    import pandas as pd

    from pokewatch_core.analysis.digest import RowsHash
    from pokewatch_core.components import Model
    from pokewatch_core.evaluation.runner import EvaluationResult

FAILED_RUNS_DIR = "pokewatch-failed-runs"
FAILED_STAGE_TAG = "pokewatch.failed_stage"
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
    ``<name>_model`` (DESIGN §5)."""
    return model.artifact_name or f"{model.name}_model"


def _plugin_versions(result: EvaluationResult) -> dict[str, str]:
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
    for dist, version in _plugin_versions(result).items():
        reqs.setdefault(dist, f"{dist}=={version}" if version != "unknown" else dist)
    return list(reqs.values())


def _signature() -> Any:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = Schema([ColSpec("string", ID), ColSpec(AnyType(), DATE, required=False)])
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


def _log_model(result: EvaluationResult, workdir: Path) -> Any:
    import mlflow
    import pandas as pd

    from pokewatch_core.tracking.fair_price import FairPricer

    pricer = FairPricer(result.model, result.policy, result.frame)
    files = pricer.save(workdir / "model_state")
    codes, cards = codes_of(result.frame[ID])
    example_cards = [str(cards[c]) for c in pd.unique(codes[:10_000])[:3]]
    with _environment(**NO_UV_FILES):
        info = _retry(
            mlflow.pyfunc.log_model,
            name=model_artifact_name(result.model),
            python_model=str(MODEL_CODE),
            artifacts={k: str(v) for k, v in files.items()},
            pip_requirements=_pip_requirements(result),
            signature=_signature(),
            input_example=pd.DataFrame({ID: example_cards}),
        )
    return info


def _dataset_digest(table: pd.DataFrame) -> str:
    """Like MLflow's pandas digest (first 10 000 rows, length, columns) without its
    per-cell Python pass over the whole frame, which takes seconds on large tables."""
    import pandas as pd

    md5 = hashlib.md5(usedforsecurity=False)
    md5.update(pd.util.hash_pandas_object(table.head(10_000), index=False).to_numpy().tobytes())
    md5.update(str(len(table)).encode())
    md5.update(",".join(map(str, table.columns)).encode())
    return md5.hexdigest()[:8]


SCHEMA_ROWS = 1_000  # the dataset's schema is read from its validated dtypes on this many rows


def make_dataset(result: EvaluationResult, data_source: str) -> Any:
    """The evaluated table as an MLflow dataset, made without a pass over all rows in Python:
    the digest hashes a bounded head (see ``_dataset_digest``), and the schema is inferred
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
        digest = _dataset_digest(table)
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
        _retry(mlflow.log_input, dataset, context="evaluation")
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
        _retry(client.log_figure, run_id, fig, path)
    _retry(client.log_text, run_id, evaluation_summary(result, data_source), SUMMARY_ARTIFACT)
    tables = workdir / "tables"
    tables.mkdir()
    result.analyses.by_card.to_csv(workdir / TABLES[0], index=False)
    if result.frame_dir is None:
        result.frame.to_parquet(workdir / TABLES[1], index=False)
        _retry(client.log_artifacts, run_id, str(tables), "tables")
        return [*figures, SUMMARY_ARTIFACT, *TABLES]
    # the workers wrote the frame as a partitioned dataset: logged as that folder
    _retry(client.log_artifacts, run_id, str(tables), "tables")
    _retry(client.log_artifacts, run_id, str(result.frame_dir), PARTITIONED_FRAME)
    return [*figures, SUMMARY_ARTIFACT, TABLES[0], PARTITIONED_FRAME + "/"]


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
        for name, value in list(result.metrics.items())[:3]
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
        return None, describe_failure(exc)
    return folder, None


def describe_failure(exc: BaseException) -> str:
    """One line naming the real cause of ``exc``: a full disk or an unwritable folder when an
    ``OSError`` in its chain says so, else the exception itself."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            where = f" ({current.filename})" if current.filename else ""
            if current.errno in (errno.ENOSPC, errno.EDQUOT):
                return f"No space left on device{where}"
            if current.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and current.filename:
                return f"{_unwritable(Path(os.fsdecode(current.filename)))} is not writable"
        current = current.__cause__ or current.__context__
    text = " ".join(str(exc).split())
    if "No space left on device" in text:
        return "No space left on device"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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


def _stop_run(run_id: str, status: str, stage: str) -> None:
    """End the active run ``run_id`` with ``status`` and the stage tag, whatever fails.

    The tag and the status go through the client with retries; ``mlflow.end_run`` then takes
    the run off MLflow's active-run stack even if the store no longer answers, so that
    MLflow's exit handler cannot end it FINISHED."""
    import mlflow
    from mlflow.tracking import MlflowClient

    with contextlib.suppress(Exception):
        client = MlflowClient()
        _retry(client.set_tag, run_id, FAILED_STAGE_TAG, stage, interruptible=False)
        _retry(client.set_terminated, run_id, status, interruptible=False)
    with contextlib.suppress(Exception):
        mlflow.end_run(status=status)


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
    import mlflow
    from mlflow.tracking import MlflowClient

    if register_model and not result.in_memory:
        raise ConfigError(
            "register_model: a dask-engine evaluation logs no model (its frame stays "
            "partitioned on disk); register one trained with the local engine"
        )
    effective_uri = use_store(tracking_uri)
    with _store_init_lock(effective_uri):
        experiment_id, enclosing = _retry(_target, experiment_name)
    resumed = experiment_id is None  # log into the enclosing `mlflow run` run

    all_tags = {"pokewatch.version": __version__}
    if enclosing is not None:
        all_tags.update(_source_tags(enclosing))
        run_name = run_name or enclosing.info.run_name
    all_tags.update({f"pokewatch.plugin.{d}": v for d, v in _plugin_versions(result).items()})
    all_tags.update(tags or {})
    all_tags.update(run_owner_tags())  # who owns it: see heal_abandoned_runs

    hide = _environment_without("MLFLOW_RUN_ID") if enclosing else contextlib.nullcontext()
    with hide:
        run = _retry(
            mlflow.start_run, experiment_id=experiment_id, run_name=run_name, tags=all_tags
        )
    run_id = run.info.run_id
    if enclosing is not None:
        _retry(_point_to, enclosing, run)
    stage = ["params"]
    finished = False
    try:
        with tempfile.TemporaryDirectory(prefix="pokewatch-") as tmp:
            logged = _log_run(
                result,
                run,
                Path(tmp),
                data_source,
                register_model,
                alias,
                log_model,
                run_name if resumed else None,
                stage,
            )
        stage[0] = "end"
        check_interrupted()  # a signal whose exception Python dropped must not finish the run
        _retry(MlflowClient().set_terminated, run_id, "FINISHED")
        finished = True
        with contextlib.suppress(Exception):  # recorded: this only pops MLflow's active run
            mlflow.end_run()
    except BaseException as exc:
        if finished:  # complete and recorded: a late signal does not undo that
            with contextlib.suppress(Exception):
                mlflow.end_run()
            raise
        killed = isinstance(exc, KeyboardInterrupt)
        # end the run before anything else can fail: a run still active when the process
        # exits is ended FINISHED by MLflow's exit handler
        _stop_run(run_id, "KILLED" if killed else "FAILED", stage[0])
        if killed or not isinstance(exc, Exception):
            raise
        kept, not_kept = keep_results(result, run_id, data_source)
        where = (
            f"the evaluation results are kept in {kept}"
            if kept
            else f"the evaluation results could not be kept ({not_kept})"
        )
        raise TrackingError(
            f"run {run_id} at {effective_uri} is incomplete and marked FAILED (stage "
            f"{stage[0]}: {describe_failure(exc)}); {where}"
        ) from exc
    return logged


def _log_run(
    result: EvaluationResult,
    run: Any,
    workdir: Path,
    data_source: str,
    register_model: str | None,
    alias: str,
    log_model: bool,
    rename: str | None,
    stage: list[str],
) -> LoggedRun:
    """Log everything; ``stage[0]`` names the stage under way, for the failure tag."""
    import mlflow
    from mlflow.tracking import MlflowClient

    if rename:
        _retry(mlflow.set_tag, "mlflow.runName", rename)
    description = run_description(result, data_source)
    _retry(mlflow.set_tag, NOTE_TAG, description)
    _retry(mlflow.log_params, {k: str(v) for k, v in result.params.items()})
    stage[0] = "dataset"
    dataset = _log_dataset(result, data_source)
    stage[0] = "artifacts"
    log_artifacts(result, run.info.run_id, workdir, data_source)
    stage[0] = "model"
    # a partitioned frame is not held anywhere as one table: no servable model (the pyfunc
    # keeps the whole price history); log_evaluation refuses register_model for it
    model = _log_model(result, workdir) if log_model and result.in_memory else None
    model_uri = str(model.model_uri) if model is not None else None
    if model is not None:  # the logged model's page shows the same description
        _retry(mlflow.set_logged_model_tags, model.model_id, {NOTE_TAG: description})
    stage[0] = "metrics"
    # linked to the logged model and the evaluated dataset (MLflow 3 LoggedModel metrics)
    _retry(
        mlflow.log_metrics,
        {k: _clean_metric(v) for k, v in result.metrics.items()},
        model_id=model.model_id if model is not None else None,
        dataset=dataset,
    )
    version = None
    if register_model and model_uri:
        stage[0] = "registry"
        registered = _retry(mlflow.register_model, model_uri, register_model)
        version = str(registered.version)
        _retry(MlflowClient().set_registered_model_alias, register_model, alias, version)
    experiment = _retry(mlflow.get_experiment, run.info.experiment_id)
    return LoggedRun(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        experiment_name=experiment.name if experiment else "",
        tracking_uri=mlflow.get_tracking_uri(),
        model_uri=model_uri,
        registered_model=register_model if version else None,
        registered_version=version,
    )
