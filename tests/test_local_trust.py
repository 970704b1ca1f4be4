"""`python -m pokewatch_core` never imports plugins from the working directory."""

from __future__ import annotations

import json
import subprocess
import sys


def _python_m(folder, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m pokewatch_core ARGS`` run in ``folder``."""
    return subprocess.run(
        [sys.executable, "-m", "pokewatch_core", *args],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_python_m_ignores_a_plugins_folder_in_the_working_directory(tmp_path):
    """Before: `python -m` put the working directory first on sys.path, so a
    `pokewatch_plugins/` folder there replaced the installed default plugins."""
    fake = tmp_path / "pokewatch_plugins"
    fake.mkdir()
    marker = tmp_path / "imported"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (fake / "defaults.py").write_text("")
    proc = _python_m(tmp_path, "models", "--json")
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert "baseline_moving_average" in {m["name"] for m in json.loads(proc.stdout)}
    assert proc.stderr == ""


def test_python_m_imports_no_library_module_from_the_working_directory(tmp_path):
    """Before: a `pluggy.py` in the working directory ran (the package imports pluggy
    before `__main__` could drop the working directory from sys.path)."""
    marker = tmp_path / "imported"
    (tmp_path / "pluggy.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    proc = _python_m(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    assert "train" in proc.stdout
