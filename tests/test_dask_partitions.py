"""The engine-free half of the dask engine: planning inputs, routing rows to card partitions by
a stable hash, evaluating a partition into states. No cluster here (quick suite)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pokewatch_core import DataError, embedded_sample_path, evaluate
from pokewatch_core.analysis.digest import RowsDigest
from pokewatch_core.analysis.overview import Overview
from pokewatch_core.data.naive import NaiveForecast
from pokewatch_core.engines import partitions as parts
from pokewatch_core.evaluation.runner import resolve_components
from pokewatch_core.evaluation.scoring import finalize_metrics, merge_states
from pokewatch_core.evaluation.spec import EvaluationSpec
from tests.conftest import make_panel, panels
from tests.test_metric_states import SUMMED


def test_a_card_lands_in_one_partition_whatever_type_stores_its_id():
    as_text = pd.Series(["7", "12", "x", "7"])
    as_ints = pd.Series([7, 12, 7])
    as_category = pd.Series(["12", "7"], dtype="category")
    for n in (1, 2, 5, 64):
        text = parts.buckets(as_text, n)
        assert text[0] == text[3]
        assert list(parts.buckets(as_ints, n)) == [text[0], text[1], text[0]]
        assert list(parts.buckets(as_category, n)) == [text[1], text[0]]
        assert ((text >= 0) & (text < n)).all()


@pytest.mark.parametrize(
    "values", [["a", "b", None, "a"], [7, 12, 7], [1.5, 7.0, None], ["7", "007", " 7"]]
)
def test_arrow_columns_route_as_their_pandas_reading_does(values):
    import pyarrow as pa

    for n in (3, 64):
        from_arrow = parts.buckets(pa.chunked_array([pa.array(values)]), n)
        from_pandas = parts.buckets(pa.array(values).to_pandas(), n)
        assert from_arrow.tolist() == from_pandas.tolist()


def test_routing_is_the_same_in_every_process():
    # Python's own str hash is salted per process; the routing must not be
    ids = [f"card-{i}" for i in range(50)]
    code = (
        "import pandas as pd\n"
        "from pokewatch_core.engines.partitions import buckets\n"
        f"print(buckets(pd.Series({ids!r}), 7).tolist())\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    here = parts.buckets(pd.Series(ids), 7).tolist()
    assert ast.literal_eval(other) == here
    assert len(set(here)) > 3  # and it spreads the cards


def test_missing_ids_go_to_partition_zero_where_validation_names_them():
    assert list(parts.buckets(pd.Series(["a", None, "b"]), 4))[1] == 0


@settings(max_examples=25, deadline=None)
@given(
    cards=st.integers(1, 30),
    n=st.integers(1, 9),
    files=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_routing_keeps_every_row_once_and_each_card_whole(tmp_path_factory, cards, n, files, seed):
    tmp = tmp_path_factory.mktemp("route")
    panel = make_panel(cards=cards, days=6, seed=seed)
    split = np.random.default_rng(seed).integers(files, size=len(panel))
    for f in range(files):
        panel.loc[split == f].to_parquet(tmp / f"in-{f}.parquet")
    pieces = parts.plan(str(tmp))
    assert sum(p.rows for p in pieces) == len(panel)
    scratch = str(tmp / "_scratch")
    assert sum(parts.route(p, i, n, scratch) for i, p in enumerate(pieces)) == len(panel)
    seen = []
    for k in range(n):
        rows = parts.read_partition(scratch, k)
        if rows is not None:
            seen.append(rows.assign(partition=k))
    routed = pd.concat(seen)
    assert len(routed) == len(panel)
    assert (routed.groupby("card_id")["partition"].nunique() == 1).all()
    key = ["card_id", "date"]
    pd.testing.assert_frame_equal(
        routed.drop(columns="partition").sort_values(key).reset_index(drop=True),
        panel.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )


def test_plan_reads_a_file_a_folder_and_a_glob(tmp_path: Path):
    panel = make_panel(cards=4, days=5)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    panel.iloc[:10].to_parquet(tmp_path / "d" / "a.parquet")
    panel.iloc[10:].to_parquet(tmp_path / "d" / "sub" / "b.parquet")
    panel.to_parquet(tmp_path / "d" / "_skipped.parquet")  # hidden by its name, as in datasets
    panel.to_csv(tmp_path / "all.csv", index=False)
    assert sum(p.rows for p in parts.plan(str(tmp_path / "d"))) == len(panel)
    assert sum(p.rows for p in parts.plan(str(tmp_path / "d" / "**" / "[ab].parquet"))) == 20
    (csv,) = parts.plan(str(tmp_path / "all.csv"))
    assert (csv.kind, csv.rows) == ("csv", len(panel))


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p / "missing.parquet", "no such file"),
        (lambda p: p / "nothing*.parquet", "no file matches"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no parquet file"),
        (lambda p: _write(p / "x.parquet", b"not parquet at all"), "cannot read parquet file"),
        (
            lambda p: (
                pd.DataFrame(
                    {"id": ["a"], "date": ["2025-01-01"], "market_price": [1.0]}
                ).to_parquet(p / "y.parquet")
                or p / "y.parquet"
            ),
            "missing required column 'card_id'",
        ),
    ],
)
def test_plan_refuses_bad_input_in_one_line(tmp_path: Path, make, needle):
    with pytest.raises(DataError, match=needle) as caught:
        parts.plan(str(make(tmp_path)))
    assert "\n" not in str(caught.value)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_big_parquet_files_are_split_by_row_groups(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(parts, "TASK_ROWS", 100)
    panel = make_panel(cards=50, days=10)
    panel.to_parquet(tmp_path / "big.parquet", row_group_size=40)
    pieces = parts.plan(str(tmp_path / "big.parquet"))
    assert len(pieces) == 5 and [p.rows for p in pieces] == [120, 120, 120, 120, 20]
    scratch = str(tmp_path / "_s")
    for i, p in enumerate(pieces):
        parts.route(p, i, 3, scratch)
    assert sum(len(parts.read_partition(scratch, k)) for k in range(3)) == len(panel)


def test_partition_states_merged_equal_the_local_metrics():
    # the partitions a cluster would evaluate, here one after another in this process
    data = pd.read_parquet(embedded_sample_path())
    local = evaluate("baseline_moving_average", data, test_start="2025-09-15")
    model, policy, metrics = resolve_components("baseline_moving_average")
    labels = parts.buckets(data["card_id"], 5)
    from pokewatch_core.data.tables import prepare_prices

    states = []
    for k in range(5):
        table = prepare_prices(data.loc[labels == k].reset_index(drop=True))
        frame, state = parts.evaluate_partition(
            table, EvaluationSpec(model, policy, metrics, pd.Timestamp("2025-09-15"))
        )
        assert len(frame) == len(table)
        states.append(state)
    merged: dict = {}
    for state in states:
        merged = merge_states(metrics, merged, state)
    values = finalize_metrics(metrics, merged)
    assert set(SUMMED) <= set(values)
    for name, outcome in values.items():
        assert outcome.value == pytest.approx(
            local.metrics[name], rel=1e-9, abs=1e-12, nan_ok=True
        ), name


def test_a_partition_without_scored_rows_gives_no_state():
    model, policy, metrics = resolve_components("baseline_moving_average")
    from pokewatch_core.data.tables import prepare_prices

    table = prepare_prices(make_panel(cards=2, days=5))
    frame, states = parts.evaluate_partition(
        table, EvaluationSpec(model, policy, metrics, pd.Timestamp("2030-01-01"))
    )
    # nothing is scored, but it counts in the overview, the digest and what the metrics learn
    # from the history (the MASE scale's one-step changes)
    assert {Overview(), RowsDigest()} <= set(states)
    assert states[Overview()].rows == len(table) and states[Overview()].scored == 0
    assert metrics["mase"].statistic() == NaiveForecast()
    naive = states[NaiveForecast()]
    assert naive.scored == 0 and naive.changes > 0
    assert frame["predicted_price"].isna().all() and len(frame) == len(table)


def test_default_partitions_aim_at_a_million_rows_and_two_per_thread():
    assert parts.default_partitions(10, 2) == 4
    assert parts.default_partitions(10_500_000, 2) == 11


def test_without_the_extra_the_dask_engine_names_it(tmp_path, monkeypatch):
    from pokewatch_core import ConfigError
    from pokewatch_core.engines.dask_engine import evaluate_on_dask
    from pokewatch_core.evaluation.spec import EvaluationSpec

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    spec = EvaluationSpec.build("baseline_moving_average")
    with pytest.raises(ConfigError, match=r"optional extra: pip install 'pokewatch\[dask\]'"):
        evaluate_on_dask(str(embedded_sample_path()), spec, output_dir=tmp_path / "f")
    assert not (tmp_path / "f").exists()


@settings(max_examples=25, deadline=None)
@given(data=panels(max_cards=6, max_days=12), seed=st.integers(0, 2**16))
def test_the_rows_hash_is_free_of_order_and_partitioning_and_sees_a_changed_price(data, seed):
    from pokewatch_core.analysis.digest import rows_hash
    from pokewatch_core.data.tables import prepare_prices

    table = prepare_prices(data)
    rng = np.random.default_rng(seed)
    shuffled = prepare_prices(data.sample(frac=1.0, random_state=seed))
    pick = rng.random(len(table)) < 0.5
    pieces = rows_hash(table.loc[pick]).merge(rows_hash(table.loc[~pick]))
    assert rows_hash(shuffled) == rows_hash(table) == pieces
    priced = np.flatnonzero(table["market_price"].notna().to_numpy())
    if len(priced):
        changed = table.copy()
        changed.iloc[priced[0], changed.columns.get_loc("market_price")] += 0.01
        assert rows_hash(changed) != rows_hash(table)
