"""Plugin discovery through real distributions: the example plugin in its own environment,
broken and conflicting plugins as fake installed distributions, strict mode, the block list."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import environment_of_linked_venv, third_party_plugins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "pokewatch-ewma"


def fake_distribution(site: Path, dist: str, entry: str, source: str) -> None:
    """Install a distribution the way pip leaves it: a module and a .dist-info with its
    entry point in the ``pokewatch`` group."""
    module = entry.replace("-", "_") + "_mod"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[pokewatch]\n{entry} = {module}\n")


GOOD = """
from dataclasses import dataclass
from typing import ClassVar
import numpy as np
from pokewatch_core import Model, hookimpl

@dataclass
class Last(Model):
    name: ClassVar[str] = "last_price"
    description: ClassVar[str] = "The card's last observed price."

    def predict(self, history, at):
        from pokewatch_core import PriceIndex
        index = PriceIndex.build(history)
        pos, count = index.locate(at)
        return index.lag(pos, count, 1)

@hookimpl
def pokewatch_register_models(register):
    register(Last)
"""

BROKEN = {
    "import-fails": (
        "raise ImportError('no module named numpy_v9')",
        "failed to load: ImportError",
    ),
    "hook-raises": (
        """
        from pokewatch_core import hookimpl
        @hookimpl
        def pokewatch_register_metrics(register):
            raise RuntimeError('metric registry exploded')
        """,
        "hook pokewatch_register_metrics failed: RuntimeError: metric registry exploded",
    ),
    "not-a-model": (
        """
        from pokewatch_core import hookimpl
        @hookimpl
        def pokewatch_register_models(register):
            register(dict)
        """,
        "is not a subclass of pokewatch_core.Model",
    ),
    "metric-as-policy": (
        """
        from pokewatch_core import Metric, hookimpl
        class Size(Metric):
            name = "size"
            def compute(self, frame):
                return float(len(frame))
        @hookimpl
        def pokewatch_register_signal_policies(register):
            register(Size)
        """,
        "is not a subclass of pokewatch_core.SignalPolicy",
    ),
    "no-name": (
        """
        from pokewatch_core import Model, hookimpl
        class Nameless(Model):
            pass
        @hookimpl
        def pokewatch_register_models(register):
            register(Nameless)
        """,
        "has no 'name'",
    ),
    "bad-annotation": (
        """
        from pokewatch_core import Model, hookimpl
        class Listy(Model):
            name = "listy"
            def __init__(self, windows: list = []):
                self.windows = windows
        @hookimpl
        def pokewatch_register_models(register):
            register(Listy)
        """,
        "parameter 'windows' of Listy has annotation",
    ),
}

DUPLICATE = """
from pokewatch_core import hookimpl
from {module} import Last as _Last

class Last(_Last):
    description = "A second plugin's model under the same name."

@hookimpl
def pokewatch_register_models(register):
    register(Last)
"""


def run(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(site), **env}
    environment.pop(
        "POKEWATCH_STRICT_PLUGINS", None
    ) if "POKEWATCH_STRICT_PLUGINS" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "pokewatch_core", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=site.parent,  # a run's artifacts go to ./mlruns: not into the checkout
        timeout=300,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "good-plugin", "good", GOOD)
    return site


def test_each_broken_plugin_is_skipped_with_one_warning(site):
    """Every kind of broken plugin at once, in one process: one warning line each, naming it
    and what broke; the good plugin beside them is listed with its component."""
    for case, (source, _) in BROKEN.items():
        fake_distribution(site, f"broken-{case}", case, source)
    proc = run(site, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    warnings = proc.stderr.strip().splitlines()
    assert len(warnings) == len(BROKEN), proc.stderr
    for case, (_, needle) in BROKEN.items():
        (line,) = [w for w in warnings if f"plugin '{case}' (broken-{case} 1.0)" in w]
        assert needle in line, line
    report = json.loads(proc.stdout)
    assert [p["name"] for p in report["plugins"]] == ["good"]
    assert report["plugins"][0]["components"][0]["name"] == "last_price"
    failed = {p["name"]: p["error"] for p in report["failed"]}
    assert set(failed) == set(BROKEN)
    for case, (_, needle) in BROKEN.items():
        assert needle in failed[case], (case, failed[case])


def test_strict_mode_turns_the_warning_into_an_error(site):
    fake_distribution(site, "broken-hook", "hook-raises", BROKEN["hook-raises"][0])
    proc = run(site, "models", POKEWATCH_STRICT_PLUGINS="1")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "plugin 'hook-raises'" in lines[0] and "STRICT" in lines[0]


def test_block_list_disables_plugins_by_name(site):
    fake_distribution(site, "broken-hook", "hook-raises", BROKEN["hook-raises"][0])
    blocked = ", ".join(["hook-raises", "good", *third_party_plugins()])
    proc = run(site, "plugins", "--json", POKEWATCH_DISABLE_PLUGINS=blocked)
    assert proc.returncode == 0 and proc.stderr == ""
    expected = sorted({"hook-raises", "good", *third_party_plugins()})
    assert json.loads(proc.stdout) == {
        "plugins": [], "failed": [], "conflicts": [], "blocked": expected,
    }  # fmt: skip
    # before: "No third-party plugins installed", which they are
    text = run(site, "plugins", POKEWATCH_DISABLE_PLUGINS=blocked)
    assert text.stdout.splitlines() == [
        f"Blocked by POKEWATCH_DISABLE_PLUGINS: {', '.join(expected)}"
    ]


def test_a_block_list_name_no_plugin_has_is_warned_about(site):
    """Before: POKEWATCH_DISABLE_PLUGINS=1 blocked nothing, silently."""
    proc = run(site, "models", POKEWATCH_DISABLE_PLUGINS="1")
    assert proc.returncode == 0
    (line,) = proc.stderr.strip().splitlines()
    assert "POKEWATCH_DISABLE_PLUGINS names '1', which no installed plugin is called" in line


@pytest.mark.slow
def test_duplicate_names_are_an_error_naming_both_plugins_when_used(
    site, tmp_path, empty_store_file
):
    fake_distribution(site, "other-plugin", "other", DUPLICATE.format(module="good_mod"))
    listing = run(site, "plugins", "--json")
    assert listing.returncode == 0
    conflicts = json.loads(listing.stdout)["conflicts"]
    assert conflicts == [{"kind": "model", "name": "last_price", "plugins": ["good", "other"]}]
    models = run(site, "models")
    assert "CONFLICT: registered by good and other" in models.stdout
    for env in ({}, {"POKEWATCH_STRICT_PLUGINS": "1"}):
        proc = run(
            site,
            "train",
            "--model",
            "last_price",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'd.db'}",
            **env,
        )
        assert proc.returncode == 1
        assert "'good' and 'other'" in proc.stderr
    # everything else keeps working next to the conflict and a broken plugin: a full
    # training with the other components, one warning line for the broken plugin
    fake_distribution(site, "broken-import", "import-fails", BROKEN["import-fails"][0])
    shutil.copyfile(empty_store_file, tmp_path / "ok.db")
    proc = run(site, "train", "--tracking-uri", f"sqlite:///{tmp_path / 'ok.db'}")
    assert proc.returncode == 0, proc.stderr
    assert "plugin 'import-fails'" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_names_list_the_choices(site):
    proc = run(site, "train", "--model", "nope")
    assert proc.returncode == 2
    assert "valid: baseline_moving_average, last_price" in proc.stderr


@pytest.fixture(scope="module")
def example_env(tmp_path_factory) -> Path:
    """A fresh environment holding the example plugin as a real installed distribution, on
    top of this project's environment (linked with a .pth file, so nothing is downloaded)."""
    from tests.conftest import linked_venv

    env = linked_venv(tmp_path_factory.mktemp("example-env") / "venv")
    subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--python",
            str(env / "bin" / "python"),
            "--no-deps",
            "--quiet",
            str(EXAMPLE),
        ],
        check=True,
    )
    return env


@pytest.mark.slow
def test_example_plugin_is_discovered_from_its_installed_distribution(
    example_env, tmp_path, empty_store_file
):
    python = str(example_env / "bin" / "python")
    listing = subprocess.run(
        [python, "-m", "pokewatch_core", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=environment_of_linked_venv(example_env),
    )
    (plugin,) = json.loads(listing.stdout)["plugins"]
    assert (plugin["name"], plugin["distribution"], plugin["version"]) == (
        "ewma",
        "pokewatch-ewma",
        "0.1.0",
    )
    assert {c["name"] for c in plugin["components"]} == {
        "ewma",
        "last_price_premium",
        "median_ae",
        "hit_rate",
        "band",
    }
    uri = f"sqlite:///{tmp_path / 'ewma.db'}"
    shutil.copyfile(empty_store_file, tmp_path / "ewma.db")
    proc = subprocess.run(
        [
            python,
            "-m",
            "pokewatch_core",
            "train",
            "--model",
            "ewma",
            "-p",
            "alpha=0.3",
            "--policy",
            "band",
            "--tracking-uri",
            uri,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment_of_linked_venv(example_env),
    )
    assert proc.returncode == 0, proc.stderr
    from tests.conftest import all_runs

    (run_,) = all_runs(uri)
    assert run_.data.params["alpha"] == "0.3" and run_.data.params["policy"] == "band"
    assert "median_ae" in run_.data.metrics
    assert run_.data.tags["pokewatch.plugin.pokewatch-ewma"] == "0.1.0"


@pytest.mark.slow
def test_example_plugin_own_tests_pass(example_env):
    proc = subprocess.run(
        [
            str(example_env / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(EXAMPLE / "tests"),
        ],
        capture_output=True,
        text=True,
        cwd=EXAMPLE,
        env=environment_of_linked_venv(example_env),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 passed" in proc.stdout
