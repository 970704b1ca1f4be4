"""docs/ci.md's workflow step, run as printed against a temporary SQLite store: a first
candidate is promoted, a better one promoted, a worse one refused (exit 3, alias unchanged)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def workflow_step(name: str) -> str:
    """The ``run:`` script of step ``name`` in the workflow printed by docs/ci.md."""
    (block,) = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "ci.md").read_text(), re.S)
    steps = yaml.safe_load(block)["jobs"]["train-gate-promote"]["steps"]
    (step,) = [s for s in steps if s.get("name") == name]
    return str(step["run"])


@pytest.mark.slow
def test_the_documented_workflow_promotes_only_better_models(tmp_path):
    from mlflow.tracking import MlflowClient

    script = workflow_step("Train, gate, promote")
    # the checkout's environment stands in for `uv sync`: its commands, without `uv run`
    script = script.replace("uv run ", "")
    (tmp_path / "data").mkdir()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pokewatch"),
            "sample-data",
            "--output",
            "data/prices.parquet",
            "--cards",
            "40",
            "--days",
            "90",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }

    def run(window: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=tmp_path,
            env={**env, "WINDOW_SIZE": str(window)},
            capture_output=True,
            text=True,
            timeout=600,
        )

    client = MlflowClient(tracking_uri=uri)

    def champion_window() -> str:
        version = client.get_model_version_by_alias("cards", "champion")
        return client.get_run(version.run_id).data.params["window_size"]

    first = run(5)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no champion yet" in first.stdout and champion_window() == "5"
    better = run(3)
    assert better.returncode == 0, better.stdout + better.stderr
    assert champion_window() == "3"
    worse = run(30)
    assert worse.returncode == 3, worse.stdout + worse.stderr
    assert "FAIL" in worse.stdout and champion_window() == "3"
