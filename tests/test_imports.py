"""Importing PokeWatch and asking for help never pays for `import mlflow`."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('-- modules --', *sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.rpartition("-- modules --")[2].split())  # not the words of printed help


def test_import_pokewatch_core_does_not_import_mlflow_pandas_or_numpy():
    modules = _modules_after("import pokewatch_core")
    assert "mlflow" not in modules
    assert "pandas" not in modules
    assert "numpy" not in modules


def test_help_does_not_import_mlflow_pandas_or_numpy():
    # `pokewatch --help` answers in a fraction of a second (benchmarks/run.py, start-up)
    code = (
        "from pokewatch_core.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
    )
    modules = _modules_after(code)
    assert not {"mlflow", "pandas", "numpy"} & modules, {"mlflow", "pandas", "numpy"} & modules


def test_evaluate_does_not_import_mlflow():
    code = (
        "import pokewatch_core as pc\n"
        "pc.evaluate('baseline_moving_average', pc.embedded_sample_path())\n"
    )
    assert "mlflow" not in _modules_after(code)


def test_nothing_imports_dask_unless_the_dask_engine_runs():
    code = (
        "import pokewatch_core as pc\n"
        "import pokewatch_core.engines.dask_engine, pokewatch_core.engines.partitions\n"
        "pc.evaluate('baseline_moving_average', pc.embedded_sample_path())\n"
        "from pokewatch_core.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
    )
    modules = _modules_after(code)
    assert not {"dask", "distributed"} & modules


def test_a_sweep_that_is_not_logged_does_not_import_mlflow():
    code = (
        "import pokewatch_core as pc\n"
        "pc.run_sweep('baseline_moving_average', pc.embedded_sample_path(),"
        " {'window_size': [2, 3]}, metrics=['rmse'])\n"
    )
    assert "mlflow" not in _modules_after(code)


def test_the_stable_import_paths_stay():
    """Paths that users and logged models import keep working whatever the layout:
    the conformance kit, the serving code of models logged before (both old paths), the
    command line's entry point and the front door's names."""
    import importlib

    kit = importlib.import_module("pokewatch_core.testing")
    assert callable(kit.check_model) and callable(kit.check_metric)
    old = importlib.import_module("pokewatch_core.fair_price")
    new = importlib.import_module("pokewatch_core.tracking.fair_price")
    assert old.FairPricer is new.FairPricer
    assert callable(importlib.import_module("pokewatch_core.cli").main)
    import pokewatch_core as pw

    for name in ("evaluate", "EvaluationSpec", "EngineOptions", "Engine", "run_sweep", "Sums"):
        assert name in pw.__all__ and getattr(pw, name) is not None
