"""``pokewatch gate``: a candidate run against the champion model, by rules."""

from __future__ import annotations

import json

import click

from pokewatch_core.cli.app import cli
from pokewatch_core.cli.options import (
    echo,
    example,
    tracking_uri_option,
)

GATE_FAILED = 3  # exit code of a gate whose rules did not all pass


@cli.command(
    epilog=example(
        "pokewatch gate --candidate 3f2a9c --champion models:/cards@champion "
        "--rule 'rmse<=1.02*champion' --rule 'strategy_sharpe>=0.5' --promote"
    )
)
@click.option("--candidate", required=True, metavar="RUN_ID", help="The candidate run (a prefix).")
@click.option(
    "--champion",
    "champion_uri",
    required=True,
    metavar="MODEL_URI",
    help="The champion: models:/NAME@ALIAS or models:/NAME/VERSION.",
)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="RULE",
    help="METRIC OP VALUE, VALUE a number, champion, F*champion or champion+-D (repeatable).",
)
@click.option(
    "--promote", is_flag=True, help="Move the alias to the candidate's version if all pass."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@tracking_uri_option
def gate(
    candidate: str,
    champion_uri: str,
    rules: tuple[str, ...],
    promote: bool,
    as_json: bool,
    tracking_uri: str | None,
) -> None:
    """Compare a candidate run with the champion model; exit 3 when a rule fails."""
    from pokewatch_core.evaluation.summary import format_value
    from pokewatch_core.tracking.gate import run_gate
    from pokewatch_core.tracking.gate_rules import parse_rule

    parsed = [parse_rule(rule) for rule in rules]
    report = run_gate(candidate, champion_uri, parsed, promote=promote, tracking_uri=tracking_uri)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        champion = f"version {report.champion_version}" if report.champion_version else "none yet"
        echo(f"Candidate run {report.candidate_run_id} vs {report.model_name} ({champion})")
        header = ("rule", "candidate", "champion", "threshold", "verdict")
        rows = [
            (
                v.rule.text,
                format_value(v.candidate),
                "" if v.champion is None else format_value(v.champion),
                "" if v.threshold is None else format_value(v.threshold),
                ("pass" if v.passed else "FAIL") + (f" ({v.note})" if v.note else ""),
            )
            for v in report.verdicts
        ]
        widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if report.promoted_version:
            echo(
                f"Promoted: models:/{report.model_name}@{report.alias} -> version "
                f"{report.promoted_version}"
            )
        elif promote and not report.passed:
            echo(f"Not promoted: models:/{report.model_name}@{report.alias} unchanged")
    if not report.passed:
        raise click.exceptions.Exit(GATE_FAILED)
