"""The plugin contract as a third-party author meets it: plain string card ids in every frame a
plugin receives, and a failing plugin named in one line."""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import pokewatch_core as pw
from pokewatch_core.testing import check_metric, check_model, example_panel
from tests.conftest import all_runs
from tests.test_plugins import fake_distribution

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pokewatch-ewma"


@pytest.fixture(scope="module")
def example_plugin():
    """The example plugin's module, imported from its source folder."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        from pokewatch_ewma import plugin

        yield plugin
    finally:
        sys.path.remove(str(EXAMPLE))


def _plain(series: pd.Series) -> bool:
    return series.dtype == pd.Series(["x"]).dtype


class Recorder(pw.Model):
    """Records the frames it is given and joins them against its own string-keyed tables."""

    name = "recorder"
    description = "Test model: last price through merge_asof, with the frames recorded."
    seen: ClassVar[list[pd.DataFrame]] = []

    def fit(self, history):
        Recorder.seen.append(history)
        return self

    def predict(self, history, at):
        Recorder.seen += [history, at]
        own = pd.read_csv(io.StringIO("card_id,tier\n1,a\n01,b\n007,c\n"), dtype=str)
        joined = at.merge(own, on="card_id", how="left")  # merge with the plugin's own table
        assert joined["tier"].notna().all()
        assert at["card_id"].map({"1": 1, "01": 2, "007": 3}).notna().all()
        assert at.join(own.set_index("card_id"), on="card_id")["tier"].notna().all()
        assert history.groupby("card_id")["market_price"].count().index.tolist() == sorted(
            {"1", "01", "007"}
        )
        requests = pd.DataFrame(
            {"card_id": np.asarray(at["card_id"]), "date": np.asarray(at["date"])}
        )
        requests["row"] = np.arange(len(requests))
        last = pd.merge_asof(
            requests.sort_values("date", kind="stable"),
            history.dropna(subset=["market_price"]).sort_values("date"),
            on="date",
            by="card_id",
            allow_exact_matches=False,
        )
        out = np.empty(len(at))
        out[last["row"].to_numpy()] = last["market_price"].to_numpy()
        return out


IDS_CSV = """card_id,date,market_price
1,2025-01-01,1.00
01,2025-01-01,2.00
007,2025-01-01,4.00
1,2025-01-02,1.50
01,2025-01-02,2.50
007,2025-01-02,4.00
1,2025-01-03,1.00
01,2025-01-03,3.00
007,2025-01-03,
"""


def test_ids_read_from_csv_stay_text_and_give_hand_computed_metrics(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text(IDS_CSV)
    Recorder.seen = []
    result = pw.evaluate(Recorder(), path, metrics=["rmse", "mape", "dataset_size"])
    frame = result.frame
    assert frame["card_id"].tolist() == ["1", "01", "007"] * 3
    assert _plain(frame["card_id"])
    # last prices: card 1: -, 1.00, 1.50; card 01: -, 2.00, 2.50; card 007: -, 4.00, (no price)
    errors = np.array([1.0 - 1.5, 2.0 - 2.5, 0.0, 1.5 - 1.0, 2.5 - 3.0])
    markets = np.array([1.5, 2.5, 4.0, 1.0, 3.0])
    assert result.metrics["dataset_size"] == 5
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert result.metrics["mape"] == pytest.approx(100 * np.mean(np.abs(errors) / markets))
    assert Recorder.seen and all(_plain(f["card_id"]) for f in Recorder.seen)


def test_ids_mapped_with_id_col_and_other_spellings_stay_text(tmp_path):
    path = tmp_path / "nixtla.csv"
    path.write_text("unique_id,ds,y\n2.5,2025-01-01,1\n2.50,2025-01-01,2\n0,2025-01-01,3\n")
    table = pw.load_prices(path, id_col="unique_id", date_col="ds", price_col="y")
    assert table["card_id"].tolist() == ["2.5", "2.50", "0"]


def test_ids_that_look_like_missing_markers_stay_ids(tmp_path):
    """`NA`, `null`, `None` are card ids in the id column (only an empty id is missing);
    in the price column they still mean a missing price."""
    path = tmp_path / "markers.csv"
    path.write_text(
        "card_id,date,market_price\nNA,2025-01-01,1\nnull,2025-01-01,NA\nNone,2025-01-01,2\n"
    )
    table = pw.load_prices(path)
    assert table["card_id"].tolist() == ["NA", "null", "None"]
    assert table["market_price"].isna().tolist() == [False, True, False]
    path.write_text("card_id,date,market_price\n,2025-01-01,1\n")
    with pytest.raises(pw.DataError, match="missing card id"):
        pw.load_prices(path)


def test_frames_given_to_metrics_and_policies_hold_plain_strings():
    seen: dict[str, pd.Series] = {}

    class Spy(pw.Metric):
        name = "spy"
        description = "Test metric (count)."
        unit = "count"

        def compute(self, frame):
            seen["ids"] = frame["card_id"]
            tiers = pd.DataFrame({"card_id": frame["card_id"].unique().tolist(), "t": 1})
            return float(frame.merge(tiers, on="card_id")["t"].sum())

    data = example_panel()
    result = pw.evaluate("baseline_moving_average", data, metrics=[Spy], test_start="2025-10-20")
    assert _plain(seen["ids"])
    assert result.metrics["spy"] == len(result.scored_frame)


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_the_example_metadata_model_keeps_the_contract_and_trains(example_plugin, run_cli, store):
    model = example_plugin.LastPriceWithPremium
    check_model(model)
    check_model(model(use_premium=False))
    check_metric(example_plugin.MedianAbsoluteError)
    pw.register_plugin(example_plugin, name="example")
    try:
        sample = pw.load_prices(pw.embedded_sample_path())
        result = pw.evaluate("last_price_premium", sample, metrics=["rmse"])
        # independently: the previous observed price of the card, times 1 + premium
        metadata = pd.read_csv(EXAMPLE / "pokewatch_ewma" / "card_metadata.csv")
        premium = dict(
            zip(
                metadata["card_id"],
                metadata["rarity"].map(example_plugin.RARITY_PREMIUM),
                strict=True,
            )
        )
        ordered = sample.sort_values(["card_id", "date"])
        last = ordered.groupby("card_id")["market_price"].transform(lambda s: s.ffill().shift(1))
        expected = last * (1 + ordered["card_id"].map(premium).fillna(0.0))
        np.testing.assert_allclose(
            result.frame.loc[ordered.index, "predicted_price"], expected, rtol=1e-12
        )
        out = run_cli("train", "--model", "last_price_premium", "--tracking-uri", store)
        assert out.exit_code == 0, out.stderr
    finally:
        pw.unregister_plugin("example")


FAILING = """
from dataclasses import dataclass
from typing import ClassVar
import numpy as np
import pandas as pd
from pokewatch_core import Metric, Model, SignalPolicy, hookimpl

PHASE = {phase!r}

def boom():
    raise pd.errors.MergeError("incompatible merge keys [0] " + "x" * 400)

@dataclass
class X(Model):
    name: ClassVar[str] = "x"
    description: ClassVar[str] = "Fails where told."
    def fit(self, history):
        if PHASE == "fit": boom()
        return self
    def predict(self, history, at):
        if PHASE == "predict": boom()
        return np.ones(len(at))

@dataclass
class P(SignalPolicy):
    name: ClassVar[str] = "xp"
    description: ClassVar[str] = "Fails where told."
    def decide(self, market, fair):
        if PHASE == "decide": boom()
        return np.where(np.isnan(fair), None, "HOLD")

@dataclass
class M(Metric):
    name: ClassVar[str] = "xm"
    description: ClassVar[str] = "Fails where told (count)."
    unit: ClassVar[str] = "count"
    def compute(self, frame):
        if PHASE == "compute": boom()
        return 1.0

@hookimpl
def pokewatch_register_models(register):
    register(X)

@hookimpl
def pokewatch_register_metrics(register):
    register(M)

@hookimpl
def pokewatch_register_signal_policies(register):
    register(P)
"""

WHO = {
    "fit": "model 'x'",
    "predict": "model 'x'",
    "decide": "policy 'xp'",
    "compute": "metric 'xm'",
}


@pytest.mark.parametrize("phase", list(WHO))
def test_a_failing_plugin_is_named_in_one_line(phase, tmp_path, monkeypatch, run_cli, store):
    site = tmp_path / "site"
    site.mkdir()
    source = textwrap.dedent(FAILING.format(phase=phase))
    fake_distribution(site, "pokewatch-x", f"x_{phase}", source)  # a module per phase
    monkeypatch.syspath_prepend(str(site))
    pw.reload_plugins()
    try:
        args = ["train", "--model", "x", "--policy", "xp", "--metric", "xm", "--metric", "rmse"]
        out = run_cli(*args, "--tracking-uri", store)
        assert out.exit_code == 1
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        prefix = f"pokewatch: error: {WHO[phase]} (pokewatch-x 1.0) failed in {phase}: "
        assert lines[0].startswith(prefix + "MergeError: incompatible merge keys [0] xxx")
        assert len(lines[0]) <= 300 and lines[0].endswith("…")
        assert "Traceback" not in out.stderr
        assert all_runs(store) == []  # nothing started, nothing RUNNING
        debug = run_cli("--debug", *args, "--tracking-uri", store)
        assert debug.exit_code == 1 and "Traceback" in debug.stderr
    finally:
        monkeypatch.undo()
        pw.reload_plugins()
