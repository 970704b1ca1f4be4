"""Nox sessions: tests and checks (what .ci/run runs, in a locked environment of their own), and
the example third-party plugin.

``uvx nox`` runs ``tests`` (the quick suite, then the slow walkthroughs; ``-- ARGS`` runs
``pytest ARGS`` instead, e.g. ``uvx nox -s tests -- -m integration``) and ``checks``
(``scripts/checks``: ruff lint, ruff format, mypy, with the versions uv.lock pins). ``lint`` and
``typecheck`` are other names of ``checks``.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests", "checks"]


def _sync(session: nox.Session) -> None:
    """Install the locked project environment into the session's virtualenv."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--extra",
        "dask",  # the dask engine's LocalCluster tests
        "--group",
        "peers",  # statsforecast, utilsforecast: the backtest peer tests
        f"--python={session.virtualenv.location}",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session
def tests(session: nox.Session) -> None:
    """The tests CI runs but the integration suite: the quick command, then the slow
    walkthroughs it leaves out. With posargs, ``pytest POSARGS`` alone."""
    _sync(session)
    if session.posargs:
        session.run("pytest", *session.posargs)
        return
    session.run("pytest", "-m", "not integration")
    session.run("pytest", "-m", "slow and not integration")


def _checks(session: nox.Session) -> None:
    """``scripts/checks`` against the session's locked environment."""
    _sync(session)
    session.run(
        str(ROOT / "scripts" / "checks"),
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


@nox.session
def checks(session: nox.Session) -> None:
    """ruff lint, ruff format check, mypy (strict): ``scripts/checks``, as CI runs it."""
    _checks(session)


@nox.session
def lint(session: nox.Session) -> None:
    """Another name of ``checks`` (ruff and mypy run together, with the locked versions)."""
    _checks(session)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Another name of ``checks`` (ruff and mypy run together, with the locked versions)."""
    _checks(session)


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
