"""The layout rules of DESIGN §1, checked on the source: pokewatch_core never imports
pokewatch_plugins; plugins and examples use only pokewatch_core's public names; only the
tracking package (pokewatch_core/tracking/) imports mlflow, inside functions but for the files
MLflow loads itself. And the library example runs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pokewatch_core

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import statement of a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def test_core_never_imports_the_default_plugins():
    for path in (ROOT / "pokewatch_core").rglob("*.py"):
        assert not any(m.startswith("pokewatch_plugins") for m, _ in _imports(path)), path


def test_plugins_and_examples_use_only_public_names():
    public = set(pokewatch_core.__all__)
    files = list((ROOT / "pokewatch_plugins").rglob("*.py"))
    files += [p for p in (ROOT / "examples").rglob("*.py") if "tests" not in p.parts]
    assert files
    for path in files:
        for module, names in _imports(path):
            if module.startswith("pokewatch_core"):
                assert module == "pokewatch_core", f"{path}: imports {module}"
                assert set(names) <= public, f"{path}: {set(names) - public} not public"


def test_only_the_tracking_package_imports_mlflow():
    tracking = ROOT / "pokewatch_core" / "tracking"
    for path in (ROOT / "pokewatch_core").rglob("*.py"):
        if tracking in path.parents:
            continue
        assert not any(m.split(".")[0] == "mlflow" for m, _ in _imports(path)), path
    # the package itself imports nothing: `import pokewatch_core.tracking.runs` stays cheap
    assert _imports(tracking / "__init__.py") == []


def test_tracking_modules_import_mlflow_inside_functions():
    """Only the two files MLflow loads itself (the evaluator entry point and the logged
    model's code) import it at module level."""
    loaded_by_mlflow = {"evaluator.py", "pyfunc.py"}
    for path in (ROOT / "pokewatch_core" / "tracking").glob("*.py"):
        if path.name in loaded_by_mlflow:
            continue
        top = [
            n
            for n in ast.parse(path.read_text()).body
            if isinstance(n, ast.Import | ast.ImportFrom)
        ]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not any(m.split(".")[0] == "mlflow" for m in names), path


def test_every_public_name_resolves():
    for name in pokewatch_core.__all__:
        assert getattr(pokewatch_core, name) is not None, name


@pytest.mark.slow  # a whole script in its own process (three evaluations, one MLflow run)
def test_library_example_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'example.db'}"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "evaluate_and_log.py"), uri],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "best window" in proc.stdout
    from tests.conftest import all_runs

    (run,) = all_runs(uri)
    assert run.data.tags["selected_by"] == "rmse"
    assert run.info.run_name.startswith("best-window-")
