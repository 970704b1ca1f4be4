"""Use PokeWatch as a library: evaluate the baseline at three window sizes on the embedded
sample, pick the best by RMSE on a held-out period, and log only that one to MLflow.

    uv run python examples/evaluate_and_log.py [TRACKING_URI]
"""

from __future__ import annotations

import sys

import pokewatch_core as pw


def main(tracking_uri: str | None = None) -> str:
    data = pw.load_prices(pw.embedded_sample_path())
    results = {
        window: pw.evaluate(
            "baseline_moving_average",
            data,
            params={"window_size": window, "fee_pct": 0.01},
            test_start="2025-10-01",
        )
        for window in (2, 3, 7)
    }
    for window, result in results.items():
        m = result.metrics
        print(
            f"window {window}: rmse {m['rmse']:.4f}  mape {m['mape']:.2f}%  "
            f"strategy {m['strategy_total_return']:+.1%}"
        )
    best = min(results, key=lambda w: results[w].metrics["rmse"])
    logged = pw.log_evaluation(
        results[best],
        experiment_name="library_example",
        run_name=f"best-window-{best}",
        tags={"selected_by": "rmse"},
        data_source=str(pw.embedded_sample_path()),
        tracking_uri=tracking_uri,
    )
    print(f"best window {best}: run {logged.run_id}, model {logged.model_uri}")
    return logged.run_id


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
