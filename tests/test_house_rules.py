"""The house rules of docs/architecture.md, checked on the source: pokewatch_core never imports
pokewatch_plugins; plugins and examples use only pokewatch_core's public names; only the
tracking package (pokewatch_core/tracking/) imports mlflow, inside functions but for the files
MLflow loads itself; no module of pokewatch_core uses another's private names. And the
library example runs."""

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
    ("cli/gate.py", "threshold"): "the gate table's column of rule thresholds",
    ("analysis/by_card.py", "rmse"): "a column of the per-card table",
    ("analysis/by_card.py", "mape"): "a column of the per-card table",
}
CORE_WORDS = {
    "horizon": "a backtest's horizon, the core's own option (docs/backtests.md); the signal "
    "quality metrics' parameter of forward observations shares the word",
}


def test_the_core_names_no_default_component_outside_defaults_py():
    """The core knows components through their metadata; the names of the default
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
        if text in names
        and text not in CORE_WORDS
        and (str(path.relative_to(CORE)), text) not in NOT_A_DEFAULT
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
    ("data/price_index.py", "_shared"): "the index of a history the runner shares with its model",
    ("interrupts.py", "_received"): "signals received while a run is being logged",
    ("plugins/registry.py", "_loaded"): "the process's plugin registry, loaded once",
    ("plugins/registry.py", "_extra"): "plugins registered in-process",
    ("sweeps/plan.py", "_PLAN"): "the sweep plan a forked worker inherits",
    ("tracking/store.py", "_server"): "the tracking server that stopped answering, the HTTP "
    "settings PokeWatch chose and the waiting notice printed, for one command",
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


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_uses_across_modules(source: str, module: str, modules: set[str]) -> list[str]:
    """The private names of other pokewatch_core modules that ``source`` (the text of module
    ``module``) uses: ``from pokewatch_core.x import _name`` and ``m._name`` where ``m`` is a
    pokewatch_core module it imported (``import pokewatch_core.x as m``, ``from
    pokewatch_core import x``). Its own privates and dunder names are fine; relative imports
    are resolved; ``modules`` are the importable module names."""
    tree = ast.parse(source)
    parts = module.split(".")
    package = parts if _is_package(module, modules) else parts[:-1]
    bound: dict[str, str] = {}  # local name -> the pokewatch_core module it is
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "pokewatch_core":
                continue
            for alias in node.names:
                if base != module and _private(alias.name):
                    found.append(f"{node.lineno}: from {base} import {alias.name}")
                if f"{base}.{alias.name}" in modules:
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pokewatch_core":
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else "pokewatch_core"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or value.id not in bound:
            continue
        owner = bound[value.id]
        for depth, name in enumerate(chain):  # pokewatch_core.tracking.store._retry
            if _private(name) and owner != module:
                found.append(f"{node.lineno}: {owner}.{name}")
                break
            if f"{owner}.{name}" not in modules or depth == len(chain) - 1:
                break
            owner = f"{owner}.{name}"
    return sorted(set(found))


def _is_package(module: str, modules: set[str]) -> bool:
    return any(m.startswith(f"{module}.") for m in modules)


def _core_modules() -> dict[str, Path]:
    return {_module_of(path, CORE): path for path in _core_files()}


def test_no_module_uses_another_modules_private_names():
    """Within pokewatch_core, what two modules share has a public name in the module it
    belongs to (docs/architecture.md): no module imports or reads another's ``_private``."""
    modules = _core_modules()
    found = {
        str(path.relative_to(CORE)): uses
        for module, path in modules.items()
        if (uses := private_uses_across_modules(path.read_text(), module, set(modules)))
    }
    assert found == {}


def test_the_private_name_checker_finds_a_seeded_violation():
    modules = {
        "pokewatch_core",
        "pokewatch_core.tracking",
        "pokewatch_core.tracking.store",
        "pokewatch_core.tracking.log",
    }
    here = "pokewatch_core.tracking.log"

    def uses(source: str) -> list[str]:
        return private_uses_across_modules(source, here, modules)

    assert uses("from pokewatch_core.tracking.store import _retry") == [
        "1: from pokewatch_core.tracking.store import _retry"
    ]
    assert uses("from .store import _retry as r") == [
        "1: from pokewatch_core.tracking.store import _retry"
    ]
    assert uses("import pokewatch_core.tracking.store as s\ns._retry(f)") == [
        "2: pokewatch_core.tracking.store._retry"
    ]
    assert uses("from pokewatch_core.tracking import store\nstore._lock") == [
        "2: pokewatch_core.tracking.store._lock"
    ]
    assert uses("import pokewatch_core.tracking.store\npokewatch_core.tracking.store._x") == [
        "2: pokewatch_core.tracking.store._x"
    ]
    # public names, dunders, a module's own privates and other packages' privates are fine
    assert uses("from pokewatch_core.tracking.store import retry, __doc__") == []
    assert uses("from pokewatch_core.tracking.log import _own\nimport mlflow\nmlflow._x") == []
    assert uses("import pokewatch_core.tracking.store as s\ns.retry(f)\ns.__name__") == []
