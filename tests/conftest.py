"""Shared fixtures: price panels, a temporary MLflow store, an in-process CLI runner."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from pokewatch_core.cli import main
from pokewatch_core.cli.app import disable_telemetry

# Every process the tests start inherits this: no MLflow telemetry (docs/failure-modes.md)
disable_telemetry()

# The real price snapshots, vendored with the tests (provenance in tests/data/README.md): the
# suite reads nothing outside the checkout.
SHARED_DATA = Path(__file__).resolve().parent / "data" / "raw"
# Every artifact one `pokewatch train` logs (the model is a LoggedModel, not a run artifact).
RUN_ARTIFACTS = {
    "plots/error_distribution.png",
    "plots/scatter_true_vs_predicted.png",
    "plots/signal_distribution.png",
    "plots/strategy_equity_curve.png",
    "summary/evaluation_summary.txt",
    "tables/metrics_by_card.csv",
    "tables/predictions.parquet",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (CI does: `pytest -m slow` selects them too)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (whole documented walkthroughs that build environments or repeat
    what quicker tests cover) run in CI and with ``--slow`` or ``-m slow``, not in the
    README's quick command."""
    markexpr = config.getoption("markexpr") or ""
    if config.getoption("--slow") or "slow" in markexpr or "dask" in markexpr:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def artifact_paths(client: object, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, recursively."""
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):  # type: ignore[attr-defined]
        out |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return out


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``pokewatch`` in-process through its real entry point (exit-code mapping included)."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def third_party_plugins() -> list[str]:
    """Entry-point names of the installed ``pokewatch`` plugins that this distribution does
    not provide (say, after ``uv pip install -e examples/pokewatch-ewma``)."""
    from importlib import metadata

    return sorted(
        ep.name
        for ep in metadata.entry_points(group="pokewatch")
        if getattr(ep.dist, "name", None) != "pokewatch"
    )


def environment_with_installed_plugins() -> dict[str, str]:
    """``os.environ`` without the suite's block list, for a process that must see the plugins
    installed in its own environment."""
    env = dict(os.environ)
    env.pop("POKEWATCH_DISABLE_PLUGINS", None)
    return env


def environment_of_linked_venv(env: Path) -> dict[str, str]:
    """``os.environ`` for a process of a :func:`linked_venv`: it sees the plugins installed in
    the venv itself, and none of those the user installed in the project's environment (which
    the venv links), so a test of "a fresh environment" holds whatever else is installed."""
    from importlib import metadata

    site = next((env / "lib").glob("python3*/site-packages"))
    own = {
        ep.name
        for dist in metadata.distributions(path=[str(site)])
        for ep in dist.entry_points
        if ep.group == "pokewatch"
    }
    out = environment_with_installed_plugins()
    out["POKEWATCH_DISABLE_PLUGINS"] = ",".join(n for n in third_party_plugins() if n not in own)
    return out


# Hypothesis' per-example deadline measures the machine, not the code: on a busy shared
# machine it fails correct tests. The suite's own timings are watched with --durations.
settings.register_profile("pokewatch", deadline=None)
settings.load_profile("pokewatch")

# The suite runs against the default plugins only, whatever else is installed in the
# environment, so that tests listing or counting components (``valid: threshold``) stay true
# after the README's ``uv pip install -e examples/pokewatch-ewma``. Set at import, before
# collection (some tests are parametrised by the registry); child processes inherit the block
# list, and tests of third-party plugins install them in environments of their own.
os.environ["POKEWATCH_DISABLE_PLUGINS"] = ",".join(third_party_plugins())
os.environ.pop("POKEWATCH_STRICT_PLUGINS", None)


@pytest.fixture(autouse=True)
def _isolated_mlflow_environment() -> Iterator[None]:
    """MLflow writes MLFLOW_* variables (experiment id, tracking URI) into os.environ when a
    run is logged in-process; restore them so no test inherits another's."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    if "mlflow" in sys.modules:  # and forget the process-wide URI mlflow.set_tracking_uri set
        sys.modules["mlflow"].set_tracking_uri(None)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="session")
def empty_store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite tracking store with MLflow's schema, made once per session: creating
    the schema (dozens of migrations) costs seconds, copying the file milliseconds."""
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("empty-store")
    db = folder / "store.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store_file: Path) -> Iterator[str]:
    """A fresh, empty SQLite tracking store (a copy of the session's migrated one); the
    working directory is a temporary folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    shutil.copyfile(empty_store_file, tmp_path / "store.db")
    yield f"sqlite:///{tmp_path / 'store.db'}"


def all_runs(uri: str) -> list[object]:
    """Every run in every experiment of the store (empty if the store was never created)."""
    from mlflow.tracking import MlflowClient

    db = uri.removeprefix("sqlite:///")
    if uri.startswith("sqlite:///") and not Path(db).exists():
        return []
    client = MlflowClient(tracking_uri=uri)
    experiments = client.search_experiments()
    return list(client.search_runs([e.experiment_id for e in experiments]))


def make_panel(
    cards: int = 3, days: int = 10, seed: int = 0, nan_rate: float = 0.0, gap_rate: float = 0.0
) -> pd.DataFrame:
    """A small random long price table, shuffled, with optional NaN prices and missing days."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(cards):
        level = rng.uniform(0.5, 300)
        for d in range(days):
            if d and rng.random() < gap_rate:
                continue
            price = round(level * float(np.exp(rng.normal(0, 0.1))), 2)
            if rng.random() < nan_rate:
                price = float("nan")
            rows.append((f"card_{c}", pd.Timestamp("2025-01-01") + pd.Timedelta(days=d), price))
    frame = pd.DataFrame(rows, columns=["card_id", "date", "market_price"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@st.composite
def panels(draw: st.DrawFn, max_cards: int = 4, max_days: int = 15) -> pd.DataFrame:
    """Hypothesis strategy: ragged panels with gaps, NaN prices and shuffled rows."""
    n_cards = draw(st.integers(1, max_cards))
    rows = []
    for c in range(n_cards):
        days = draw(st.sets(st.integers(0, max_days), min_size=1, max_size=max_days))
        for d in sorted(days):
            price = draw(
                st.one_of(
                    st.floats(0.01, 1000, allow_nan=False, allow_infinity=False),
                    st.just(float("nan")),
                )
                if draw(st.integers(0, 9)) == 0
                else st.floats(0.01, 1000, allow_nan=False, allow_infinity=False)
            )
            rows.append((f"c{c}", pd.Timestamp("2025-03-01") + pd.Timedelta(days=d), price))
    frame = pd.DataFrame(rows, columns=["card_id", "date", "market_price"])
    if frame["market_price"].isna().all():
        frame.loc[0, "market_price"] = 1.0
    perm = draw(st.permutations(range(len(frame))))
    return frame.iloc[list(perm)].reset_index(drop=True)


def main_in_process(*args: str) -> None:
    """Run ``pokewatch ARGS`` in this process (for module-scoped fixtures, where ``run_cli``
    cannot be used) and require exit 0; the environment MLflow changes is restored."""
    saved = dict(os.environ)
    try:
        with pytest.raises(SystemExit) as done:
            main(list(args))
        assert done.value.code == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)


def linked_venv(env: Path) -> Path:
    """A new virtual environment at ``env`` whose packages are this project's installed ones,
    linked with a .pth file (nothing is downloaded; the project's own .pth files, its editable
    install among them, run too): installed entry points come from real distributions."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next((env / "lib").glob("python3*/site-packages"))
    project_site = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    (site / "pokewatch-project.pth").write_text(
        f"import site; site.addsitedir({str(project_site)!r})\n"
    )
    return env
