"""``pokewatch plugins``, ``models``, ``metrics``, ``policies``: what is installed."""

from __future__ import annotations

import json
from typing import Any

import click

from pokewatch_core.cli.app import cli
from pokewatch_core.cli.options import (
    echo,
    example,
)


def _format_default(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _component_lines(infos: list[dict[str, Any]], with_kind: bool = False) -> list[str]:
    """Components as aligned columns: [kind], name, parameters (one per line), description."""
    rows: list[list[str]] = []
    for info in infos:
        if "conflict" in info:
            params = [""]
            description = f"CONFLICT: registered by {' and '.join(info['conflict'])}"
        else:
            params = [
                f"{p['name']}: {p['type']} = {_format_default(p['default'])}"
                for p in info["parameters"]
            ] or [""]
            description = info["description"]
        first = [info["kind"]] if with_kind else []
        rows.append([*first, info["name"], params[0], description])
        rows += [[*([""] if with_kind else []), "", extra, ""] for extra in params[1:]]
    header = [*(["kind"] if with_kind else []), "name", "parameters", "description"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


@cli.command(epilog=example("pokewatch plugins --all"))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--all", "show_all", is_flag=True, help="Include the default plugins.")
def plugins(as_json: bool, show_all: bool) -> None:
    """Installed plugins: distribution, hooks, components, failures and conflicts."""
    from pokewatch_core.plugins.catalog import plugins_report

    report = plugins_report(include_defaults=show_all)
    if as_json:
        echo(json.dumps(report, indent=2, default=str))
        return
    if not report["plugins"] and not report["failed"] and not report["blocked"]:
        echo("No third-party plugins installed (--all shows the defaults).")
    if report["blocked"]:
        echo(f"Blocked by POKEWATCH_DISABLE_PLUGINS: {', '.join(report['blocked'])}")
    for entry in report["plugins"]:
        origin = f"{entry['distribution']} {entry['version']}" if entry["distribution"] else "local"
        echo(f"{entry['name']} ({origin})  hooks: {', '.join(entry['hooks']) or 'none'}")
        for line in _component_lines(entry["components"], with_kind=True):
            echo(f"  {line}")
    if report["failed"]:
        echo("Failed to load:")
        for entry in report["failed"]:
            origin = (
                f" ({entry['distribution']} {entry['version']})" if entry["distribution"] else ""
            )
            echo(f"  {entry['name']}{origin}: {entry['error']}")
    if report["conflicts"]:
        echo("Conflicts (a name registered by several plugins cannot be used):")
        for c in report["conflicts"]:
            echo(f"  {c['kind']} '{c['name']}': {', '.join(c['plugins'])}")


def _component_command(kind: str, title: str) -> None:
    @cli.command(
        name=title,
        help=f"List the {title} that can be used, with their parameters.",
        epilog=example(f"pokewatch {title} --json"),
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def command(as_json: bool) -> None:
        from pokewatch_core.plugins.catalog import components

        listed = components(kind)
        if as_json:
            echo(json.dumps(listed, indent=2, default=str))
            return
        for line in _component_lines(listed):
            echo(line)


_component_command("model", "models")


_component_command("metric", "metrics")


_component_command("policy", "policies")
