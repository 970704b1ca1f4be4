"""The MLflow pyfunc model PokeWatch logs, in models-from-code form.

MLflow copies this file into the logged model (``pyfunc.py``, beside ``MLmodel``) and runs it
at load time; the model's state lives in plain artifacts (``pokewatch_model.json``,
``history.parquet``) and the components are rebuilt from the plugin registry by name, so
nothing is pickled. The file stays a thin wrapper that nothing imports (it calls ``set_model``
when run): the serving logic is ``fair_price.FairPricer``, versioned with the installed
package rather than copied into every model.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

from pokewatch_core.errors import DataError
from pokewatch_core.tracking.fair_price import FairPricer, json_ready

# Set by MLflow's scoring server (`mlflow models serve`), whose JSON writer lets NaN/NaT through.
SERVING_FLAG = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"


class PokeWatchModel(PythonModel):  # type: ignore[misc]
    """Serves fair prices and signals: input ``card_id`` and optional ``date``.

    In Python the answer is a typed DataFrame (NaN/NaT where unknown); behind
    ``mlflow models serve`` it is JSON-ready (``null`` where unknown, ISO dates)."""

    def load_context(self, context: Any) -> None:
        self.pricer = FairPricer.load(context.artifacts["config"], context.artifacts["history"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        try:
            out = self.pricer.predict(model_input)
        except DataError as exc:  # a bad request: 400 with the one-line reason, served
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        if os.environ.get(SERVING_FLAG, "").lower() == "true":
            return json_ready(out)  # served answers: null for missing values, ISO dates
        return out


mlflow.models.set_model(PokeWatchModel())
