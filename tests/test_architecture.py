"""The layers of pokewatch_core (docs/architecture.md): no module imports from a layer above
its own, and no modules import each other in a cycle. Every import counts, the ones inside
functions (lazy imports) included: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pokewatch_core"

# Lowest first. A module may import from its own layer and the layers below it. Each package
# of pokewatch_core is one layer; its top-level modules are the foundations, but for the entry
# points listed with the interface.
ENTRY_MODULES = {"__main__", "pytest_plugin", "testing", "fair_price"}
PACKAGE_LAYERS = [
    "data",
    "analysis",
    "plugins",
    "evaluation",
    "engines",
    "sweeps",
    "tracking",
    "cli",
]
LAYERS: list[tuple[str, set[str]]] = [
    (
        "foundations",
        {p.stem for p in ROOT.glob("*.py") if p.stem != "__init__" and p.stem not in ENTRY_MODULES},
    ),
    *((package, {package}) for package in PACKAGE_LAYERS),
    # fair_price: the old import path of the serving code, kept for models logged before
    ("interface", ENTRY_MODULES),
]


def test_every_package_is_a_layer():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(PACKAGE_LAYERS)


def _module_names() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _module_names()


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for rank, (_, names) in enumerate(LAYERS):
        if top in names or module in names:
            return rank
    raise AssertionError(f"pokewatch_core.{module} is in no layer: add it to LAYERS and docs")


def _imports(path: Path) -> set[str]:
    """The pokewatch_core modules ``path`` imports (relative names). A name the package
    loads lazily (``from pokewatch_core import log_evaluation``) counts as its module;
    relative imports are resolved."""
    from pokewatch_core import _LAZY

    here = path.relative_to(ROOT).with_suffix("").parts
    package = here[:-1]  # the package a relative import starts from
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from .tracking.log import y
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                module = node.module or ""
                if not (module == "pokewatch_core" or module.startswith("pokewatch_core.")):
                    continue
                module = module.removeprefix("pokewatch_core").lstrip(".")
            for alias in node.names:
                inner = f"{module}.{alias.name}" if module else alias.name
                if inner in MODULES:
                    found.add(inner)  # a submodule
                elif not module and alias.name in _LAZY:
                    found.add(_LAZY[alias.name].removeprefix("pokewatch_core."))
                elif module:
                    found.add(module)
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("pokewatch_core.")
                for a in node.names
                if a.name.startswith("pokewatch_core.")
            }
    return found - {""}


GRAPH = {name: _imports(path) for name, path in MODULES.items() if name}


def test_every_module_has_a_layer():
    for name in GRAPH:
        _layer(name)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_from_a_layer_above(module):
    upward = [d for d in sorted(GRAPH[module]) if _layer(d) > _layer(module)]
    assert not upward, (
        f"pokewatch_core.{module} ({LAYERS[_layer(module)][0]}) imports "
        + ", ".join(f"{d} ({LAYERS[_layer(d)][0]})" for d in upward)
    )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_lazy_names_and_relative_imports_count(tmp_path):
    module = ROOT / "_probe.py"
    try:
        module.write_text(
            "from pokewatch_core import log_evaluation\nfrom .tracking.store import Store\n"
            "from . import cli\n"
        )
        assert _imports(module) == {"tracking.log", "tracking.store", "cli"}
    finally:
        module.unlink()


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
