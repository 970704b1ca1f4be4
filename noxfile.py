"""Nox sessions: tests, lint, typecheck, and the example third-party plugin."""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests", "lint", "typecheck"]


def _sync(session: nox.Session) -> None:
    """Install the locked project environment into the session's virtualenv."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--extra",
        "dask",  # the dask engine's LocalCluster tests
        f"--python={session.virtualenv.location}",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite."""
    _sync(session)
    session.run("pytest", *(session.posargs or ["-m", "not integration"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy (strict) on pokewatch_core."""
    _sync(session)
    session.run("mypy")


@nox.session
def example_plugin(session: nox.Session) -> None:
    """Install the example plugin next to pokewatch in a fresh environment, train with it and
    run its tests."""
    session.install(f"{ROOT}[testing]", f"{ROOT}/examples/pokewatch-ewma")
    tmp = session.create_tmp()
    session.chdir(tmp)
    session.run("pokewatch", "plugins")
    session.run(
        "pokewatch",
        "train",
        "--model",
        "ewma",
        "--policy",
        "band",
        "--tracking-uri",
        f"sqlite:///{tmp}/mlflow.db",
    )
    session.run(
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"{ROOT}/examples/pokewatch-ewma/tests",
    )
