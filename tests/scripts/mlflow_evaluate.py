"""Run in a fresh environment where pokewatch is installed as a distribution: score models with
``mlflow.models.evaluate`` through the ``pokewatch`` evaluator entry point and print what it
returned and logged, as JSON. Usage: python mlflow_evaluate.py TRACKING_URI MODEL_URI DATA"""

from __future__ import annotations

import json
import sys

import mlflow
import numpy as np
import pandas as pd

uri, model_uri, data_path = sys.argv[1:4]
mlflow.set_tracking_uri(uri)
data = pd.read_parquet(data_path)


def last_price(frame: pd.DataFrame) -> np.ndarray:
    """A plain function, no PokeWatch: each row's card's last observed price before it."""
    rows = frame[["card_id", "date"]].reset_index(drop=True)
    known = data.dropna(subset=["market_price"]).sort_values("date")
    found = pd.merge_asof(
        rows.assign(row=np.arange(len(rows))).sort_values("date"),
        known[["card_id", "date", "market_price"]],
        on="date",
        by="card_id",
        allow_exact_matches=False,
    )
    out = np.full(len(rows), np.nan)
    out[found["row"].to_numpy()] = found["market_price"].to_numpy()
    return out


out = {}
with mlflow.start_run(run_name="logged-model") as run:
    result = mlflow.models.evaluate(
        model_uri,
        data,
        targets="market_price",
        model_type="pokewatch",
        evaluators=["pokewatch"],
        evaluator_config={"pokewatch": {"policy": "threshold", "buy_threshold_pct": 0.1}},
    )
    out["logged_model"] = {"run_id": run.info.run_id, "metrics": result.metrics}
    out["artifacts"] = sorted(result.artifacts)
with mlflow.start_run(run_name="function") as run:
    result = mlflow.models.evaluate(
        last_price,
        data,
        targets="market_price",
        model_type="pokewatch",
        evaluators="pokewatch",
        evaluator_config={"sell_threshold_pct": 0.2},
    )
    out["function"] = {"run_id": run.info.run_id, "metrics": result.metrics}

# MLflow's default regressor evaluator needs a finite prediction and target on every row
from pokewatch_core import mlflow_metrics  # noqa: E402

complete = data.assign(prediction=last_price(data)).dropna(subset=["market_price", "prediction"])
complete = complete.drop(columns="prediction").reset_index(drop=True)
with mlflow.start_run(run_name="default-evaluator") as run:
    result = mlflow.models.evaluate(
        last_price,
        complete,
        targets="market_price",
        model_type="regressor",
        # MLflow's SHAP step cannot read pandas 3 string columns such as card_id
        evaluator_config={"log_model_explainability": False},
        extra_metrics=mlflow_metrics(metrics=["rmse", "mape", "buy_rate", "strategy_sharpe"]),
    )
    out["default_evaluator"] = {"metrics": result.metrics, "rows": len(complete)}
print(json.dumps(out, default=float))
