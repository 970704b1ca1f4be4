"""PokeWatch inside ``mlflow.models.evaluate``: an MLflow model evaluator named ``pokewatch``
(entry-point group ``mlflow.model_evaluator``) and PokeWatch metrics as MLflow ``make_metric``
objects for MLflow's default evaluator.

    mlflow.models.evaluate(
        model_uri_or_fn, data, targets="market_price", model_type="pokewatch",
        evaluators=["pokewatch"],
        evaluator_config={"policy": "threshold", "buy_threshold_pct": 0.1},
    )

``data`` holds ``card_id``, ``date`` and ``market_price``; the model returns one fair price per
row (a PokeWatch-logged model's ``fair_price`` column is used). The chosen policy turns them
into signals and PokeWatch's metrics (every installed one unless ``"metrics"`` lists some) are
computed exactly as ``pokewatch train`` computes them, logged into the run with the plots,
the summary and the tables, and returned in MLflow's ``EvaluationResult``.

This module is loaded by MLflow (through the entry point) or by ``pokewatch_core.mlflow_metrics``,
never by ``import pokewatch_core``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models.evaluation.artifacts import (
    CsvEvaluationArtifact,
    ImageEvaluationArtifact,
    ParquetEvaluationArtifact,
)
from mlflow.models.evaluation.base import EvaluationResult as MlflowEvaluationResult
from mlflow.models.evaluation.base import ModelEvaluator

from pokewatch_core.data.tables import DATE, ID, PRICE
from pokewatch_core.defaults import DEFAULT_POLICY
from pokewatch_core.errors import ConfigError, DataError
from pokewatch_core.evaluation.runner import EvaluationResult, score_predictions
from pokewatch_core.files import temporary_directory

MODEL_TYPE = "pokewatch"
FAIR_PRICE = "fair_price"


def _fair_prices(raw: Any, column: str | None) -> np.ndarray[Any, Any]:
    """One fair price per row from a model's output: the ``predictions`` column, else a
    PokeWatch model's ``fair_price``, else a single column or a plain array."""
    if isinstance(raw, pd.DataFrame):
        if column and column in raw.columns:
            raw = raw[column]
        elif FAIR_PRICE in raw.columns:
            raw = raw[FAIR_PRICE]
        elif raw.shape[1] == 1:
            raw = raw.iloc[:, 0]
        else:
            raise ConfigError(
                f"the model returned columns {', '.join(map(str, raw.columns))}: name the fair "
                "price with predictions=... (or return a 'fair_price' column)"
            )
    try:
        return np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:  # strings, dates, objects: not fair prices
        sample = np.asarray(raw, dtype=object).reshape(-1)[:1]
        shown = f" (the first: {sample[0]!r})" if len(sample) else ""
        raise DataError(
            f"the model's predictions are not numbers{shown}: a fair price per row is needed"
        ) from exc


def score_dataset(
    features: pd.DataFrame,
    targets: Any,
    fair: Any,
    config: Mapping[str, Any] | None = None,
    source: str = "data",
) -> EvaluationResult:
    """PokeWatch's evaluation of given fair prices: ``features`` with ``card_id`` and
    ``date``, ``targets`` the market prices; ``config`` holds ``policy``, ``metrics`` and
    component parameters (``buy_threshold_pct``, ``fee_pct``, …)."""
    data, policy, metrics, options = check_dataset(features, targets, config, source)
    return score_predictions(data, fair, policy, metrics, options, source=source)


def check_dataset(
    features: pd.DataFrame, targets: Any, config: Mapping[str, Any] | None, source: str
) -> tuple[pd.DataFrame, str, list[str] | None, dict[str, Any]]:
    """Check the evaluation data and configuration before any model is called: the data as a
    price table, the policy, the metric names (one name may be given as a string) and the
    remaining component parameters."""
    from pokewatch_core.data.tables import prepare_prices
    from pokewatch_core.evaluation.runner import GivenPredictions
    from pokewatch_core.plugins.resolve import resolve_components

    options = dict(config or {})
    policy = options.pop("policy", DEFAULT_POLICY)
    metrics = options.pop("metrics", None)
    if isinstance(metrics, str):
        metrics = [metrics]
    if targets is None:
        raise ConfigError("the PokeWatch evaluator needs targets='market_price'")
    data = features.copy()
    data[PRICE] = np.asarray(targets, dtype=np.float64)
    for column in (ID, DATE):
        if column not in data.columns:
            raise ConfigError(f"the evaluation data needs a {column!r} column")
    prepare_prices(data, source)  # bad data fails here, not inside the user's model
    resolve_components(GivenPredictions(), policy, metrics, options)  # bad options too
    return data, policy, metrics, options


def log_scored(result: EvaluationResult, run_id: str, source: str) -> dict[str, Any]:
    """Log a scored evaluation's metrics, plots, summary and tables into run ``run_id``;
    returns MLflow evaluation artifacts by name."""
    from mlflow.tracking import MlflowClient

    from pokewatch_core.tracking.log import log_artifacts, metric_entities
    from pokewatch_core.tracking.store import retry

    client = MlflowClient()
    retry(client.log_batch, run_id, metrics=metric_entities(result.metrics))
    with temporary_directory("eval") as tmp:
        paths = log_artifacts(result, run_id, Path(tmp), source)
    base = client.get_run(run_id).info.artifact_uri.rstrip("/")
    kinds = {".png": ImageEvaluationArtifact, ".csv": CsvEvaluationArtifact}
    return {
        Path(p).stem: kinds.get(Path(p).suffix, ParquetEvaluationArtifact)(uri=f"{base}/{p}")
        for p in paths
        if Path(p).suffix in {".png", ".csv", ".parquet"}
    }


class PokeWatchEvaluator(ModelEvaluator):  # type: ignore[misc]
    """MLflow model evaluator for ``model_type="pokewatch"``."""

    @classmethod
    def can_evaluate(cls, *, model_type: str, evaluator_config: Any, **kwargs: Any) -> bool:
        """Only price models, asked for by ``model_type="pokewatch"``."""
        return model_type == MODEL_TYPE

    def evaluate(
        self,
        *,
        model_type: str,
        dataset: Any,
        run_id: str,
        evaluator_config: Any,
        model: Any = None,
        extra_metrics: Any = None,
        custom_artifacts: Any = None,
        predictions: str | None = None,
        **kwargs: Any,
    ) -> MlflowEvaluationResult:
        """Score the model's fair prices on ``dataset`` with PokeWatch and log into
        ``run_id``."""
        features = dataset.features_data
        source = getattr(dataset, "name", None) or "evaluation data"
        check_dataset(features, dataset.labels_data, evaluator_config, source)
        raw = model.predict(features) if model is not None else dataset.predictions_data
        fair = _fair_prices(raw, predictions)
        result = score_dataset(features, dataset.labels_data, fair, evaluator_config, source)
        artifacts = log_scored(result, run_id, source)
        return MlflowEvaluationResult(metrics=dict(result.metrics), artifacts=artifacts)


def mlflow_metrics(
    policy: str = DEFAULT_POLICY,
    metrics: list[str] | None = None,
    **params: Any,
) -> list[Any]:
    """PokeWatch metrics as MLflow ``make_metric`` objects, for MLflow's default evaluator::

        mlflow.models.evaluate(model, data, targets="market_price", model_type="regressor",
                               extra_metrics=pokewatch_core.mlflow_metrics())

    Each reads the predictions, the targets and the data's ``card_id`` and ``date`` columns;
    ``policy`` and ``params`` (e.g. ``buy_threshold_pct=0.2``) decide the signals."""
    from mlflow.metrics import MetricValue, make_metric

    from pokewatch_core.plugins.registry import get_plugins

    names = list(metrics) if metrics is not None else get_plugins().metrics.names()
    config = {"policy": policy, "metrics": names, **params}
    last: dict[str, Any] = {}  # the metrics share one scoring per evaluation data

    def scored(predictions: Any, targets: Any, card_id: Any, date: Any) -> EvaluationResult:
        fair = np.asarray(predictions, dtype=np.float64)
        digest = hashlib.sha1(fair.tobytes(), usedforsecurity=False)
        digest.update(np.asarray(targets, dtype=np.float64).tobytes())
        digest.update(
            pd.util.hash_pandas_object(pd.Series(np.asarray(card_id))).to_numpy().tobytes()
        )
        key = digest.hexdigest()
        if last.get("key") != key:
            features = pd.DataFrame({ID: np.asarray(card_id), DATE: np.asarray(date)})
            last.update(key=key, result=score_dataset(features, targets, fair, config))
        result: EvaluationResult = last["result"]
        return result

    def metric_for(name: str) -> Any:
        def eval_fn(predictions: Any, targets: Any, card_id: Any = None, date: Any = None) -> Any:
            if card_id is None or date is None:
                raise ConfigError("PokeWatch metrics need 'card_id' and 'date' columns in data")
            value = scored(predictions, targets, card_id, date).metrics[name]
            return MetricValue(aggregate_results={name: value})

        cls = get_plugins().metrics.get(name)
        better = cls.greater_is_better
        return make_metric(
            eval_fn=eval_fn,
            greater_is_better=True if better is None else better,
            name=name,
            long_name=cls.description,
        )

    return [metric_for(name) for name in names]
