"""Everything PokeWatch records in or reads from MLflow; the only place ``mlflow`` is imported.

- ``store``: which tracking store (URI resolution, run options checked up front), whether it
  answers (``reach_store``: one check per command), retries, the SQLite first-contact lock,
  experiments, run owners and the healing of abandoned runs.
- ``log``: one evaluation as one run (``log_evaluation``), its artifacts, dataset and model.
- ``runs``: run queries for ``pokewatch compare``.
- ``pyfunc``: the logged model (a models-from-code file MLflow copies into each model);
  ``fair_price``: the fair-price serving it delegates to (no mlflow).
- ``evaluator``: the ``pokewatch`` evaluator of ``mlflow.models.evaluate`` and
  ``mlflow_metrics``; ``sweep``: ``run_sweep`` and a logged sweep's parent and child runs;
  ``gate``: ``pokewatch gate``.

This file imports nothing, and the modules import ``mlflow`` inside functions (``evaluator``
and ``pyfunc``, loaded only by MLflow or on demand, at the top): ``import pokewatch_core``,
``evaluate()`` and ``pokewatch --help`` never pay for it.
"""
