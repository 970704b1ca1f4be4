"""Every hook spec is documented in docs/plugins.md with its exact signature, and tested."""

from __future__ import annotations

import inspect
from pathlib import Path

import pokewatch_core.hookspecs as hookspecs

ROOT = Path(__file__).resolve().parents[1]


def _hookspecs() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "pokewatch_spec")
    ]


def test_there_are_three_hookspecs():
    assert sorted(_hookspecs()) == [
        "pokewatch_register_metrics",
        "pokewatch_register_models",
        "pokewatch_register_signal_policies",
    ]


def test_each_hookspec_is_documented_with_its_signature():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    for name in _hookspecs():
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"def {name}({params}): ..." in doc, name


def test_each_hookspec_is_exercised_by_a_test():
    tests = "".join(
        p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name
    )
    for name in _hookspecs():
        assert f"def {name}(register)" in tests, f"no test implements {name}"
