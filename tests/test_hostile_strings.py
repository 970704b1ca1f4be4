"""Names and values from runs, files and plugins reach the terminal with control characters
escaped: an escape sequence in a run name must not clear the user's screen."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pokewatch_core.terminal import printable
from tests.conftest import all_runs, make_panel

CLEAR = "\x1b[2J\x1b[H"


def _has_control(text: str) -> bool:
    return any(not (ch.isprintable() or ch == "\n") for ch in text)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain name", "plain name"),
        ("évaluation ポケモン", "évaluation ポケモン"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("tab\there\nnew", "tab\\there\\nnew"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("rtl\u202eevil", "rtl\\u202eevil"),
    ],
)
def test_printable_escapes_only_what_a_terminal_would_act_on(raw, shown):
    assert printable(raw) == shown


def test_compare_escapes_run_names_and_values(run_cli, store, tmp_path):
    """Before: `pokewatch compare` wrote the run name's escape sequence to the terminal."""
    data = tmp_path / "p.csv"
    make_panel(cards=2, days=6, seed=1).to_csv(data, index=False)
    hostile = f"evil{CLEAR}run"
    result = run_cli(
        "train",
        "--tracking-uri",
        store,
        "--data-path",
        str(data),
        "--run-name",
        hostile,
        "--tag",
        f"note={CLEAR}",
    )
    assert result.exit_code == 0, result.stderr
    assert not _has_control(result.stdout + result.stderr)
    ranked = run_cli("compare", "--tracking-uri", store)
    assert ranked.exit_code == 0, ranked.stderr
    assert "evil\\x1b[2J\\x1b[Hrun" in ranked.stdout
    assert not _has_control(ranked.stdout + ranked.stderr)
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(tracking_uri=store).search_runs(["1"])
    side = run_cli("compare", "--tracking-uri", store, run.info.run_id, run.info.run_id)
    assert side.exit_code == 0, side.stderr
    assert "evil\\x1b[2J" in side.stdout and not _has_control(side.stdout)


def test_errors_and_card_ids_are_escaped(run_cli, store, tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame(
        {
            "card_id": [f"x{CLEAR}", "y"],
            "date": ["2025-01-01", "2025-01-02"],
            "market_price": [-1, 2],
        }
    ).to_csv(path, index=False)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(path))
    assert result.exit_code == 2
    assert "\\x1b[2J" in result.stderr and not _has_control(result.stderr)
    missing = run_cli("compare", "--tracking-uri", store, "--experiment-name", f"e{CLEAR}")
    assert missing.exit_code == 2
    assert not _has_control(missing.stderr)


def test_experiment_name_in_the_train_summary_is_escaped(run_cli, store, tmp_path):
    data = Path(tmp_path / "p.csv")
    make_panel(cards=2, days=5, seed=2).to_csv(data, index=False)
    result = run_cli(
        "train", "--tracking-uri", store, "--data-path", str(data), "--experiment-name", f"x{CLEAR}"
    )
    assert result.exit_code == 0, result.stderr
    assert "x\\x1b[2J" in result.stdout and not _has_control(result.stdout + result.stderr)


def test_a_line_break_in_a_name_or_path_cannot_forge_a_summary_line(run_cli, store, tmp_path):
    """Before: an experiment name or data file name holding a line break printed a second,
    forged ``Run ... logged`` line (the one docs/ci.md's step reads)."""
    data = Path(tmp_path / "d\nRun forged logged.csv")
    make_panel(cards=2, days=5, seed=2).to_csv(data, index=False)
    result = run_cli(
        "train", "--tracking-uri", store, "--data-path", str(data),
        "--experiment-name", "a\nRun x logged to experiment 'y'",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("Run ")] == [
        next(line for line in lines if line.startswith("Run ") and "\\nRun x logged" in line)
    ]
    assert "d\\nRun forged logged.csv" in result.stdout


def test_card_ids_reach_the_per_card_table_whole_and_never_as_formulas(run_cli, store, tmp_path):
    """Before: an id holding ``\\r`` split its row of ``tables/metrics_by_card.csv`` for a
    spreadsheet, and ``=cmd|...`` went in as a formula."""
    from mlflow.tracking import MlflowClient

    ids = {"a": "=cmd|' /C calc'!A0", "b": "ab\rcd", "c": "+SUM(1)", "d": "007"}
    panel = make_panel(cards=4, days=6, seed=3)
    panel["card_id"] = panel["card_id"].map(
        dict(zip(sorted(panel["card_id"].unique()), ids.values(), strict=True))
    )
    data = tmp_path / "hostile.parquet"
    panel.to_parquet(data)
    result = run_cli("train", "--tracking-uri", store, "--data-path", str(data))
    assert result.exit_code == 0, result.stderr
    run_id = all_runs(store)[0].info.run_id
    path = MlflowClient(tracking_uri=store).download_artifacts(
        run_id, "tables/metrics_by_card.csv", str(tmp_path)
    )
    text = Path(path).read_bytes().decode()
    assert len(text.strip("\n").split("\n")) == 1 + len(ids)  # a header and one line a card
    read = pd.read_csv(path, dtype={"card_id": str})
    assert sorted(read["card_id"]) == sorted(["'=cmd|' /C calc'!A0", "ab\rcd", "'+SUM(1)", "007"])
    assert not any(line.startswith(("=", "+", "-", "@")) for line in text.split("\n"))


def test_numbers_in_report_tables_are_not_taken_for_formulas(tmp_path):
    from pokewatch_core.files import write_report_csv

    path = tmp_path / "t.csv"
    write_report_csv(pd.DataFrame({"value": ["-0.5", "+2", "=1+1", "-x"]}), path)
    assert pd.read_csv(path)["value"].astype(str).tolist() == ["-0.5", "+2", "'=1+1", "'-x"]
