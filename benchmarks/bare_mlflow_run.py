"""The same run `pokewatch train` logs, written directly against MLflow (the overhead
benchmark's reference): params, metrics, three figures and a pyfunc model, on the embedded
sample with the same evaluation. Usage: python bare_mlflow_run.py TRACKING_URI"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pokewatch_core import embedded_sample_path, evaluate

CODE = Path(tempfile.mkdtemp()) / "model.py"
CODE.write_text(
    "import mlflow\n"
    "class Model(mlflow.pyfunc.PythonModel):\n"
    "    def load_context(self, context):\n"
    "        import pandas as pd\n"
    "        self.history = pd.read_parquet(context.artifacts['history'])\n"
    "    def predict(self, context, model_input, params=None):\n"
    "        return model_input\n"
    "mlflow.models.set_model(Model())\n"
)


def main(uri: str) -> None:
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bare")
    data = pd.read_parquet(embedded_sample_path())
    result = evaluate("baseline_moving_average", data)
    frame = result.frame
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({k: str(v) for k, v in result.params.items()})
        mlflow.log_metrics(result.metrics)
        error = (frame["predicted_price"] - frame["market_price"]).dropna()
        for name, draw in {
            "error_distribution": lambda ax: ax.hist(error, bins=60),
            "scatter_true_vs_predicted": lambda ax: ax.scatter(
                frame["market_price"], frame["predicted_price"], s=4
            ),
            "signal_distribution": lambda ax: ax.bar(
                ["BUY", "SELL", "HOLD"],
                frame["signal"].value_counts().reindex(["BUY", "SELL", "HOLD"]).to_numpy(),
            ),
        }.items():
            fig = Figure()
            draw(fig.add_subplot())
            mlflow.log_figure(fig, f"plots/{name}.png")
        history = Path(tmp) / "history.parquet"
        frame[["card_id", "date", "market_price"]].to_parquet(history)
        mlflow.pyfunc.log_model(
            name="baseline_model",
            python_model=str(CODE),
            artifacts={"history": str(history)},
            input_example=pd.DataFrame({"card_id": ["x"]}),
            pip_requirements=["mlflow", "pandas"],
        )
    assert np.isfinite(result.metrics["rmse"])


if __name__ == "__main__":
    main(sys.argv[1])
