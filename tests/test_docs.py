"""The maintainers' map matches the code: docs/architecture.md's module table names every
module of pokewatch_core and nothing that is not there (the manner of datasette's
tests/test_docs.py), in the layers tests/test_architecture.py enforces."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.test_architecture import ENTRY_MODULES, PACKAGE_LAYERS

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "pokewatch_core"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _module_table() -> dict[str, set[str]]:
    """The rows of the table under '## Module map': first cell (a package folder such as
    `data/`, or 'foundations' / 'entry points' for the top level) -> the modules named in
    the second cell."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or set(cells[0]) <= {"-", " "} or cells[0] == "layer":
            continue
        rows[cells[0].strip("`")] = set(re.findall(r"`([\w.]+)`", cells[1]))
    return rows


def _code_modules() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for package in PACKAGE_LAYERS:
        folder = CORE / package
        out[f"{package}/"] = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    top = {p.stem for p in CORE.glob("*.py") if p.stem != "__init__"}
    out["foundations"] = top - ENTRY_MODULES
    out["entry points"] = top & ENTRY_MODULES
    return out


def test_the_module_table_names_every_module_and_only_those():
    assert _module_table() == _code_modules()


def test_the_table_lists_the_layers_in_the_enforced_order():
    documented = [name for name in _module_table() if name.endswith("/")]
    assert documented == [f"{p}/" for p in PACKAGE_LAYERS]


def test_the_readme_links_the_architecture():
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()


def test_no_document_outside_the_repository_is_cited():
    """The project's docs are its contract: code, tests and docs cite them only."""
    outside = re.compile(r"DESIGN(\.md| §)")
    files = [*CORE.rglob("*.py"), *(ROOT / "pokewatch_plugins").rglob("*.py")]
    files += [*(ROOT / "docs").glob("*.md"), ROOT / "README.md", *(ROOT / "tests").glob("*.py")]
    found = [
        str(f.relative_to(ROOT))
        for f in files
        if f != Path(__file__) and outside.search(f.read_text())
    ]
    assert found == []


def _spacing_table() -> list[tuple[float, float, bool, str]]:
    """The user guide's periods-per-year table: (low, high, high inclusive, periods)."""
    text = (ROOT / "docs" / "user-guide.md").read_text()
    rows = []
    for low, high_op, high, periods in re.findall(
        r"^\| (?:([\d.]+) <=? )?s (<=?|≤|<|>) ([\d.]+)[^|]*\| ([^|(]+)",
        text.replace("≤", "<="),
        flags=re.M,
    ):
        rows.append((float(low or 0), float(high), high_op, periods.strip()))
    return rows


def test_the_guides_periods_per_year_table_is_the_codes():
    from pokewatch_core.analysis.strategy import _periods_per_year

    table = _spacing_table()
    assert len(table) == 9
    for low, high, op, periods in table:
        if op == ">":  # "s > 400": beyond the last bound
            points = [high + 1, high * 3]
        else:
            top = high if op == "<=" else high - 0.5
            points = [p for p in (low + 0.5, (low + top) / 2, top) if p > low]
        for s in points:
            expected = 365 / s if "365 / s" in periods else float(periods)
            got = _periods_per_year(np.array([0.0, s, 2 * s]))
            assert got == pytest.approx(expected), (s, periods)
