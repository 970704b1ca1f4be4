"""No outbound calls: MLflow telemetry is off in every process PokeWatch starts (CLI,
``python -m pokewatch_core``, tests, CI, the server script, the compose stack), unless the user
set the variables themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TELEMETRY_VARS = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
# The variables under which MLflow disables telemetry by itself (CI, pytest): without them the
# child shows what a user's terminal would get.
_AUTOMATIC = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL")

CHILD = """
import os, subprocess, sys
{entry}
child = subprocess.run(
    [sys.executable, "-c",
     "import os; from mlflow.telemetry.utils import is_telemetry_disabled; "
     "print(os.environ.get('MLFLOW_DISABLE_TELEMETRY'), os.environ.get('DO_NOT_TRACK'), "
     "is_telemetry_disabled())"],
    capture_output=True, text=True, check=True,
)
print(child.stdout.strip())
"""
ENTRIES = {
    "console script": (
        "from pokewatch_core.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    ),
    "python -m": (
        "import runpy\nsys.argv = ['pokewatch_core', '--version']\n"
        "try:\n    runpy.run_module('pokewatch_core', run_name='__main__')\n"
        "except SystemExit:\n    pass"
    ),
}


def _clean_env(**extra: str) -> dict[str, str]:
    drop = (*TELEMETRY_VARS, *_AUTOMATIC)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("entry", list(ENTRIES))
def test_child_processes_inherit_telemetry_off(entry, tmp_path):
    """Before: nothing set it, and MLflow's telemetry thread ran in every process."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(entry=ENTRIES[entry])],
        env=_clean_env(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "true true True"


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_the_users_own_setting_is_kept(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(entry=ENTRIES["console script"])],
        env=_clean_env(MLFLOW_DISABLE_TELEMETRY="false"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "false None False"


def test_the_test_suite_itself_runs_with_telemetry_off():
    assert os.environ.get("MLFLOW_DISABLE_TELEMETRY") or os.environ.get("DO_NOT_TRACK")


def test_compose_server_and_ci_turn_telemetry_off():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["mlflow"]["environment"]
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "${MLFLOW_DISABLE_TELEMETRY:-true}"
    assert env["DO_NOT_TRACK"] == "${DO_NOT_TRACK:-true}"
    # the server script's real process environment is checked in test_tracking_server.py
    block = 'if [ -z "${MLFLOW_DISABLE_TELEMETRY+x}${DO_NOT_TRACK+x}" ]; then'
    for script in (ROOT / ".ci" / "run", ROOT / "scripts" / "tracking-server.sh"):
        text = script.read_text()
        assert block in text and "export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true" in text
