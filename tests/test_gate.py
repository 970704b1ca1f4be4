"""`pokewatch gate` end to end against a temporary store: train -> gate -> promote, as the CI
workflow of docs/ci.md runs it. A better candidate is promoted, a worse one refused with exit 3
and the alias unchanged; the first candidate passes; bad rules are usage errors."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest


def _train(run_cli, store, window, *data):
    out = run_cli(
        "train",
        *data,
        "-p",
        f"window_size={window}",
        "--register-model",
        "cards",
        "--alias",
        "candidate",
        "--tracking-uri",
        store,
    )
    assert out.exit_code == 0, out.stderr
    return re.search(r"Run ([0-9a-f]{32})", out.stdout)[1]


def _champion_version(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store).get_model_version_by_alias("cards", "champion")


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_train_gate_promote_sequence(run_cli, store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    gate = ["gate", "--champion", "models:/cards@champion", "--tracking-uri", store]

    first = _train(run_cli, store, 5)
    out = run_cli(*gate, "--candidate", first[:10], "--rule", "rmse<=1.02*champion", "--promote")
    assert out.exit_code == 0, out.stderr
    assert "pass (no champion yet)" in out.stdout
    assert _champion_version(store).run_id == first
    assert client.get_run(first).data.tags["pokewatch.gate"] == "passed"

    better = _train(run_cli, store, 3)  # the 3-day mean beats the 5-day one on the sample
    out = run_cli(
        *gate,
        "--candidate",
        better,
        "--rule",
        "rmse<=champion",
        "--rule",
        "skill_vs_naive>=-1",
        "--promote",
        "--json",
    )
    assert out.exit_code == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] and report["champion_version"] == "1"
    rmse = report["rules"][0]
    # the champion is re-scored on the candidate's data: its value is its own run's rmse
    assert rmse["champion"] == pytest.approx(client.get_run(first).data.metrics["rmse"])
    assert rmse["candidate"] == pytest.approx(client.get_run(better).data.metrics["rmse"])
    promoted = _champion_version(store)
    assert promoted.run_id == better and report["promoted_version"] == str(promoted.version)
    assert client.get_model_version("cards", promoted.version).tags["pokewatch.gate"] == "passed"

    worse = _train(run_cli, store, 14)
    out = run_cli(*gate, "--candidate", worse, "--rule", "rmse<=1.02*champion", "--promote")
    assert out.exit_code == 3, out.stderr
    assert "FAIL" in out.stdout and "unchanged" in out.stdout
    assert _champion_version(store).run_id == better  # the alias did not move
    assert client.get_run(worse).data.tags["pokewatch.gate"] == "failed"


@pytest.fixture(scope="module")
def one_candidate(tmp_path_factory):
    """A store with one trained run (trained in-process)."""
    from tests.conftest import main_in_process

    uri = f"sqlite:///{tmp_path_factory.mktemp('gate') / 'store.db'}"
    main_in_process("train", "--tracking-uri", uri, "--metric", "rmse")
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(tracking_uri=uri).search_runs(["1"])
    return uri, run.info.run_id


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rule", "rmse<="], "rule 'rmse<='"),
        (["--rule", "rmse~1"], "METRIC OP VALUE"),
        ([], "at least one --rule"),
        (["--rule", "nope<=1"], "no metric 'nope'"),
        (["--rule", "rmse<=1", "--champion", "runs:/x/model"], "models:/NAME@ALIAS"),
        (["--rule", "rmse<=1", "--champion", "models:/cards/3", "--promote"], "moves an alias"),
        # before: "no champion yet" (every rule passed), or the candidate gated against itself
        (["--rule", "rmse<=1", "--champion", "models:/cards@v1"], "'v1' is a reserved alias"),
        (["--rule", "rmse<=1", "--champion", "models:/cards@latest"], "'latest' is a reserved"),
    ],
)
def test_bad_usage_is_exit_2_in_one_line(args, needle, one_candidate, run_cli):
    uri, candidate = one_candidate
    champion = [] if "--champion" in args else ["--champion", "models:/cards@champion"]
    out = run_cli("gate", "--candidate", candidate, "--tracking-uri", uri, *champion, *args)
    assert out.exit_code == 2 and needle in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_gate_refuses_incomplete_runs_changed_data_and_missing_versions(run_cli, store, tmp_path):
    """Only a FINISHED candidate on the data it was scored on, against a version that exists."""
    from mlflow.tracking import MlflowClient

    import pokewatch_core as pw

    data = tmp_path / "prices.parquet"
    original = pw.generate_prices(cards=300, days=40, seed=3)  # over 10 000 rows
    original.to_parquet(data)

    def train(window):
        return _train(run_cli, store, window, "--data-path", str(data))

    gate = [
        "gate",
        "--champion",
        "models:/cards@champion",
        "--rule",
        "rmse<=2*champion",
        "--tracking-uri",
        store,
    ]
    first = train(3)
    assert run_cli(*gate, "--candidate", first, "--promote").exit_code == 0
    second = train(4)
    client = MlflowClient(tracking_uri=store)
    client.set_terminated(second, "FAILED")
    out = run_cli(*gate, "--candidate", second, "--promote")
    assert out.exit_code == 2 and "FAILED, not FINISHED" in out.stderr
    third = train(5)
    changed = pd.read_parquet(data)
    changed.loc[changed.index[:50], "market_price"] *= 3
    changed.to_parquet(data)
    out = run_cli(*gate, "--candidate", third)
    assert out.exit_code == 2 and "has changed since run" in out.stderr
    late = original.copy()  # a price changed past the first 10 000 rows only
    assert len(late) > 10_000
    late.loc[late.index[-5:], "market_price"] *= 3
    late.to_parquet(data)
    out = run_cli(*gate, "--candidate", third)
    assert out.exit_code == 2 and "has changed since run" in out.stderr
    out = run_cli(
        "gate",
        "--candidate",
        first,
        "--champion",
        "models:/cards/99",
        "--rule",
        "rmse<=1",
        "--tracking-uri",
        store,
    )
    assert out.exit_code == 2 and "no such version" in out.stderr
    assert _champion_version(store).run_id == first  # nothing moved
    out = run_cli(
        *gate[:-2], "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}", "--candidate", first
    )
    assert out.exit_code == 2 and "no tracking store" in out.stderr
    assert not (tmp_path / "none.db").exists()


def test_rescoring_reads_no_inferred_value_as_a_parameter():
    """A candidate logs what its metrics inferred apart (``inferred.<metric>.<name>``): the
    champion is re-scored with the user's parameters only, so it infers them again."""
    from pokewatch_core import get_plugins
    from pokewatch_core.tracking import gate

    logged = {
        "periods_per_year": "None",
        "inferred.strategy_sharpe.periods_per_year": "52.0",
        "fee_pct": "0.0",
    }
    kept = {k: v for k, v in logged.items() if not gate._inferred(k)}
    cls = get_plugins().metrics.get("strategy_sharpe")
    given = gate._filtered(cls, kept, "strategy_sharpe")
    assert cls.from_params(given).periods_per_year is None


@pytest.mark.slow  # two trainings and a gate: CI's slow run has it
def test_a_run_trained_with_other_column_names_is_gated(run_cli, store, tmp_path):
    """Before: gate read the data with the default names and refused it ("missing column")."""
    import re

    import pokewatch_core as pw

    data = pw.generate_prices(cards=20, days=40, seed=3).rename(
        columns={"card_id": "unique_id", "date": "ds", "market_price": "y"}
    )
    path = tmp_path / "nixtla.parquet"
    data.to_parquet(path)
    columns = ["--id-col", "unique_id", "--date-col", "ds", "--price-col", "y"]
    common = ["--data-path", str(path), "--tracking-uri", store, *columns]
    first = run_cli("train", *common, "--register-model", "cards")
    assert first.exit_code == 0, first.stderr
    second = run_cli("train", *common, "-p", "window_size=5")
    assert second.exit_code == 0, second.stderr
    run_id = re.search(r"Run (\w+) logged", second.stdout).group(1)
    gate = run_cli(
        "gate", "--candidate", run_id, "--champion", "models:/cards@champion",
        "--rule", "rmse<=2*champion", "--tracking-uri", store,
    )  # fmt: skip
    assert gate.exit_code == 0, gate.stderr
