"""The MLflow pyfunc model PokeWatch logs, in models-from-code form.

MLflow copies this file into the logged model and runs it at load time; the model's state
lives in plain artifacts (``pokewatch_model.json``, ``history.parquet``) and the components
are rebuilt from the plugin registry by name, so nothing is pickled.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from pokewatch_core.fair_price import FairPricer


class PokeWatchModel(PythonModel):  # type: ignore[misc]
    """Serves fair prices and signals: input ``card_id`` and optional ``date``."""

    def load_context(self, context: Any) -> None:
        self.pricer = FairPricer.load(context.artifacts["config"], context.artifacts["history"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.pricer.predict(model_input)


mlflow.models.set_model(PokeWatchModel())
