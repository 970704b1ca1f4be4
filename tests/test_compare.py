"""`pokewatch compare` against a temporary store with several runs."""

from __future__ import annotations

import itertools
import json
import math
import shutil

import pytest

from tests.conftest import all_runs, make_panel


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, empty_store_file):
    """Three finished runs (window sizes 1, 3, 8) in one store, shared by the module's tests
    (each only reads the store)."""
    from pokewatch_core import evaluate
    from pokewatch_core.tracking.log import log_evaluation

    folder = tmp_path_factory.mktemp("compare")
    store = f"sqlite:///{folder / 'store.db'}"
    shutil.copyfile(empty_store_file, folder / "store.db")
    panel = make_panel(cards=6, days=40, seed=8, nan_rate=0.03)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the store's artifacts go beside it
        for window in (1, 3, 8):
            result = evaluate("baseline_moving_average", panel, params={"window_size": window})
            log_evaluation(result, tracking_uri=store, run_name=f"ma{window}", log_model=False)
    runs = {r.info.run_name: r for r in all_runs(store)}
    return store, runs


def test_ranks_by_rmse_ascending_by_default(run_cli, three_runs):
    store, runs = three_runs
    result = run_cli("compare", "--tracking-uri", store, "--json")
    assert result.exit_code == 0, result.stderr
    ranked = json.loads(result.stdout)["runs"]
    expected = sorted(runs.values(), key=lambda r: r.data.metrics["rmse"])
    assert [r["run_id"] for r in ranked] == [r.info.run_id for r in expected]
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    assert ranked[0]["metrics"]["rmse"] == expected[0].data.metrics["rmse"]


def test_order_limit_and_chosen_metrics(run_cli, three_runs):
    store, runs = three_runs
    result = run_cli(
        "compare",
        "--tracking-uri",
        store,
        "--metric",
        "rmse",
        "--metric",
        "mape",
        "--descending",
        "--limit",
        "2",
        "--json",
    )
    data = json.loads(result.stdout)
    worst_first = sorted(runs.values(), key=lambda r: -r.data.metrics["rmse"])[:2]
    assert [r["run_id"] for r in data["runs"]] == [r.info.run_id for r in worst_first]
    assert data["metrics"] == ["rmse", "mape"]
    assert set(data["runs"][0]["metrics"]) == {"rmse", "mape"}


def test_table_shows_names_models_and_the_varying_params(run_cli, three_runs):
    store, _ = three_runs
    result = run_cli("compare", "--tracking-uri", store)
    assert result.exit_code == 0
    header = result.stdout.splitlines()[1]
    for column in ("run_name", "model", "policy", "window_size", "rmse", "strategy_total_return"):
        assert column in header
    assert "buy_threshold_pct" not in header  # the same in every run
    assert {"ma1", "ma3", "ma8"} <= set(result.stdout.split())


def test_side_by_side_marks_differences(run_cli, three_runs):
    store, runs = three_runs
    ids = [runs["ma1"].info.run_id, runs["ma3"].info.run_id]
    data = json.loads(run_cli("compare", *ids, "--tracking-uri", store, "--json").stdout)
    params = {p["name"]: p for p in data["params"]}
    assert params["window_size"]["values"] == ["1", "3"] and params["window_size"]["differs"]
    assert not params["buy_threshold_pct"]["differs"]
    metrics = {m["name"]: m for m in data["metrics"]}
    assert metrics["rmse"]["values"] == [runs[n].data.metrics["rmse"] for n in ("ma1", "ma3")]
    assert (
        not metrics["dataset_size"]["differs"]
        or runs["ma1"].data.metrics["dataset_size"] != (runs["ma3"].data.metrics["dataset_size"])
    )
    text = run_cli("compare", *ids, "--tracking-uri", store).stdout
    window_line = next(line for line in text.splitlines() if "param.window_size" in line)
    assert window_line.startswith("*")
    policy_line = next(line for line in text.splitlines() if "param.policy" in line)
    assert not policy_line.startswith("*")


def test_unknown_experiment_and_run_are_usage_errors(run_cli, three_runs):
    store, runs = three_runs
    result = run_cli("compare", "--tracking-uri", store, "--experiment-name", "nope")
    assert result.exit_code == 2 and "no experiment named 'nope'" in result.stderr
    missing = "0123456789abcdef0123456789abcdef"
    assert missing not in {r.info.run_id for r in runs.values()}
    for bad in (missing, "zz-not-hex"):
        result = run_cli("compare", bad, "--tracking-uri", store)
        assert result.exit_code == 2 and f"no run '{bad}'" in result.stderr
        assert "Traceback" not in result.stderr


def test_short_run_ids_from_the_table_are_accepted(run_cli, three_runs):
    store, runs = three_runs
    table = run_cli("compare", "--tracking-uri", store).stdout
    # the ranking prints 12 characters of each run id: those work as arguments
    short = [line.split()[1] for line in table.splitlines()[3:]]
    assert sorted(short) == sorted(r.info.run_id[:12] for r in runs.values())
    full = json.loads(run_cli("compare", *short, "--tracking-uri", store, "--json").stdout)
    by_short = {r.info.run_id[:12]: r.info.run_id for r in runs.values()}
    assert [r["run_id"] for r in full["runs"]] == [by_short[s] for s in short]
    # the shortest prefix that is still unique works too
    ids = [r.info.run_id for r in runs.values()]
    unique = next(
        ids[0][:n] for n in range(1, 33) if sum(i.startswith(ids[0][:n]) for i in ids) == 1
    )
    result = run_cli("compare", unique, "--tracking-uri", store, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["runs"][0]["run_id"] == ids[0]


def test_ambiguous_prefix_is_a_usage_error_listing_the_matches(run_cli, store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    experiment = client.create_experiment("many")
    # 17 hex ids: two of them share their first character (pigeonhole)
    ids = sorted(client.create_run(experiment).info.run_id for _ in range(17))
    first = next(a[0] for a, b in itertools.pairwise(ids) if a[0] == b[0])
    matching = [i for i in ids if i.startswith(first)]
    result = run_cli("compare", first, "--tracking-uri", store)
    assert result.exit_code == 2
    assert "ambiguous" in result.stderr and all(i in result.stderr for i in matching)
    assert len(result.stderr.strip().splitlines()) == 1
    others = [i for i in ids if not i.startswith(first)]
    assert not any(i in result.stderr for i in others)


def test_unknown_metric_names_the_metrics_present(run_cli, three_runs):
    store, runs = three_runs
    result = run_cli("compare", "--tracking-uri", store, "--metric", "foo")
    assert result.exit_code == 2 and "'foo'" in result.stderr
    present = sorted(next(iter(runs.values())).data.metrics)
    assert f"metrics present: {', '.join(present)}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_metrics_that_differ_in_the_last_bits_are_the_same():
    from pokewatch_core.cli.compare import _differ

    assert not _differ([1.6122781, 1.6122781 * (1 + 3e-16)])  # another order of additions
    assert not _differ([0.0, 1e-15])
    assert _differ([1.0, 1.0 + 1e-6])
    assert not _differ([math.nan, math.nan])
    assert _differ([math.nan, 1.0])
    assert _differ(["1", "3"]) and not _differ(["a", "a"])
