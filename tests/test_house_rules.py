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


CORE = ROOT / "pokewatch_core"


def _core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a file that is not a docstring and not a dict key."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))  # docstrings
        if isinstance(node, ast.Dict):
            skip.update(id(k) for k in node.keys if k is not None)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


# A string equal to a default's name that is not the default: (file, string) -> why.
NOT_A_DEFAULT = {
    ("cli/commands.py", "threshold"): "the gate table's column of rule thresholds",
    ("analysis/by_card.py", "rmse"): "a column of the per-card table",
    ("analysis/by_card.py", "mape"): "a column of the per-card table",
}


def test_the_core_names_no_default_component_outside_defaults_py():
    """DESIGN: the core knows components through their metadata; the names of the default
    components, their parameters and the default experiment appear only in defaults.py."""
    from pokewatch_core import defaults, get_plugins

    plugins = get_plugins()
    names = {defaults.DEFAULT_EXPERIMENT, "baseline_model"}
    for kind in ("model", "metric", "policy"):
        for name in plugins.registry(kind).names():
            cls = plugins.registry(kind).get(name)
            if cls.__module__.startswith("pokewatch_plugins"):
                names.add(name)
                names.update(cls.param_specs())
    found = [
        (str(path.relative_to(CORE)), line, text)
        for path in _core_files()
        if path.name != "defaults.py"
        for line, text in _string_constants(path)
        if text in names and (str(path.relative_to(CORE)), text) not in NOT_A_DEFAULT
    ]
    assert found == []


def test_column_names_are_written_once():
    """The column names are the constants of pokewatch_core/columns.py."""
    from pokewatch_core import columns

    names = {columns.ID, columns.DATE, columns.PRICE, columns.PREDICTED, columns.SIGNAL}
    found = [
        (str(path.relative_to(CORE)), line, text)
        for path in _core_files()
        if path.name != "columns.py"
        for line, text in _string_constants(path)
        if text in names and (path.name, text) != ("features.py", "date")  # a regex group
    ]
    assert found == []


# Module-level state that functions change, and why it is there. Everything else a result
# needs is computed once and held by the result (no module-level analysis caches).
MUTABLE_STATE = {
    ("card_ids.py", "_known"): "the codes of the id columns PokeWatch made (weakly, by object)",
    ("interrupts.py", "_received"): "signals received while a run is being logged",
    ("plugins/registry.py", "_loaded"): "the process's plugin registry, loaded once",
    ("plugins/registry.py", "_extra"): "plugins registered in-process",
    ("sweeps/plan.py", "_PLAN"): "the sweep plan a forked worker inherits",
}
MUTATORS = {"append", "extend", "update", "pop", "popitem", "clear", "setdefault", "add"}


def _changed_module_state(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    top = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets = [node.target] if isinstance(node, ast.AnnAssign) else targets
        top.update(t.id for t in targets if isinstance(t, ast.Name))
    changed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            changed.update(node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in top and node.func.attr in MUTATORS:
                changed.add(owner.id)
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id in top
                ):
                    changed.add(target.value.id)
    return changed


def test_module_level_state_is_only_what_is_listed():
    found = {
        (str(path.relative_to(CORE)), name)
        for path in _core_files()
        for name in _changed_module_state(path)
    }
    assert found == set(MUTABLE_STATE)
    # no module keys anything on memory addresses but the view check of data.same_buffers
    users = [str(p.relative_to(CORE)) for p in _core_files() if ".ctypes" in p.read_text()]
    assert users == ["data/tables.py"]
