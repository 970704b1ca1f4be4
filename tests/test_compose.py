"""docker-compose.yml keeps the invariants of a team server (no Docker engine runs in CI, so
the file is checked as data, and with `docker-compose config` when that tool is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)


def test_services_and_named_volumes():
    assert {"postgres", "minio", "create-bucket", "mlflow"} <= set(SERVICES)
    assert set(COMPOSE["volumes"]) == {"postgres-data", "minio-data"}
    assert "postgres-data:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "minio-data:/data" in SERVICES["minio"]["volumes"]


def test_images_are_pinned():
    images = [s["image"] for s in SERVICES.values() if "image" in s]
    for image in images:
        tag = image.rpartition(":")[2]
        assert ":" in image and tag not in {"latest", ""}, image
    dockerfile = (ROOT / "docker" / "mlflow.Dockerfile").read_text()
    assert re.search(r"^FROM ghcr.io/mlflow/mlflow:v\d+\.\d+\.\d+$", dockerfile, re.M)
    assert all("==" in spec for spec in re.findall(r'"([^"]+)"', dockerfile))


def test_mlflow_uses_postgres_and_proxied_s3_artifacts():
    command = SERVICES["mlflow"]["command"]
    assert "--backend-store-uri postgresql" in command and "@postgres:5432/" in command
    assert "--artifacts-destination s3://" in command
    assert "--serve-artifacts" in command
    assert "--default-artifact-root" not in command  # clients must not write to server paths
    assert "--allowed-hosts" in command
    env = SERVICES["mlflow"]["environment"]
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert SERVICES["mlflow"]["depends_on"]["create-bucket"]["condition"] == (
        "service_completed_successfully"
    )
    assert "mc mb" in SERVICES["create-bucket"]["entrypoint"]


def test_port_binds_to_localhost_by_default():
    (port,) = SERVICES["mlflow"]["ports"]
    assert port == "${MLFLOW_BIND_ADDRESS:-127.0.0.1}:5001:5000"
    assert ENV_EXAMPLE["MLFLOW_BIND_ADDRESS"] == "127.0.0.1"


def test_long_running_services_have_health_checks():
    for name in ("postgres", "minio", "mlflow"):
        assert "test" in SERVICES[name]["healthcheck"], name


def test_credentials_come_from_env_and_only_the_example_is_committed():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert used <= set(ENV_EXAMPLE), used - set(ENV_EXAMPLE)
    for secret in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
        assert (
            SERVICES["postgres" if "POSTGRES" in secret else "minio"]["environment"][secret]
            == "${" + secret + "}"
        )
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT).returncode == 0
    assert ignored, ".env must be git-ignored"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_accepts_the_file(tmp_path):
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    proc = subprocess.run(
        [
            "docker-compose",
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(env),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
