"""The command line's own surface: help, examples, listings (no MLflow run needed)."""

from __future__ import annotations

import shlex

import click
import pytest

from pokewatch_core.cli import cli

COMMANDS = sorted(cli.commands)


def test_bare_pokewatch_prints_the_normal_help(run_cli):
    bare = run_cli()
    assert bare.exit_code == 0 and bare.stderr == ""
    assert bare.stdout == run_cli("--help").stdout
    assert bare.stdout.startswith("Usage: pokewatch")
    assert all(name in bare.stdout for name in COMMANDS)


def test_debug_is_an_option_of_the_command_line(run_cli, tmp_path):
    """`--debug` alone prints the help; before a command it adds the traceback to the one
    error line (and only then)."""
    alone = run_cli("--debug")
    assert alone.exit_code == 0 and "Commands:" in alone.stdout
    missing = str(tmp_path / "missing.csv")
    quiet = run_cli("train", "--data-path", missing)
    loud = run_cli("--debug", "train", "--data-path", missing)
    assert quiet.exit_code == loud.exit_code == 2
    assert quiet.stderr.strip().splitlines() == [f"pokewatch: error: {missing}: no such file"]
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip()
    unknown = run_cli("train", "--debug")  # a group option: before the command
    assert unknown.exit_code == 2 and "No such option '--debug'" in unknown.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_text(name):
    command = cli.commands[name]
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help and param.help.strip(), f"{name} {param.opts[0]} has no help"


@pytest.mark.parametrize("name", COMMANDS)
def test_each_subcommand_help_ends_with_one_valid_example(run_cli, name):
    result = run_cli(name, "--help")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.rstrip().splitlines()
    assert lines[-2].strip() == "Example:", result.stdout
    assert result.stdout.count("Example:") == 1
    words = shlex.split(lines[-1])
    assert words[:2] == ["pokewatch", name]
    # the example parses: options and arguments the command really has
    command = cli.commands[name]
    with command.make_context(name, words[2:], resilient_parsing=False) as ctx:
        assert ctx.command is command


@pytest.mark.parametrize("kind", ["models", "metrics", "policies"])
def test_component_listings_are_aligned_columns(run_cli, kind):
    result = run_cli(kind)
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.rstrip("\n").splitlines()
    assert header.split() == ["name", "parameters", "description"]
    params_at, description_at = header.index("parameters"), header.index("description")
    assert rows
    for row in rows:
        # every cell starts exactly at its column: the character before it is a space
        for start in (params_at, description_at):
            if len(row) > start and row[start] != " ":
                assert row[start - 1] == " ", (row, start)
        if row[:params_at].strip():  # a component's first line carries its description
            assert row[description_at] != " " and row[description_at - 1] == " "
        else:  # a further parameter of the component above, in the parameters column
            assert row[params_at] != " " and len(row) <= description_at
        assert row[params_at:description_at].strip() == "" or row[params_at] != " "


def test_listing_shows_each_parameter_with_type_and_default(run_cli):
    from pokewatch_core import get_plugins

    lines = run_cli("models").stdout.splitlines()
    cls = get_plugins().models.get("baseline_moving_average")
    specs = cls.param_specs()
    start = next(i for i, line in enumerate(lines) if line.startswith("baseline_moving_average "))
    block = lines[start : start + len(specs)]
    for line, spec in zip(block, specs.values(), strict=True):
        assert f"{spec.name}: {spec.type_name} = {spec.default!r}" in line


@pytest.mark.parametrize("command", [["metrics"], ["plugins", "--all"]])
def test_a_reader_that_stops_reading_is_no_error(command):
    """Before: `pokewatch metrics | head -1` printed a BrokenPipeError line (exit 1)."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pokewatch_core", *command],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr  # as a tool killed by SIGPIPE: no pass
    assert proc.stderr == ""
