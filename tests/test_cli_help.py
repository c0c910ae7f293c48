"""CLI help reads well at 80 columns: paragraphs reach typer unbroken (rich wraps them to the
terminal), and `compare` is a visible alias of `report`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.cli.app import reflow


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command under `command` (typer's own click types), with its path of names."""
    yield path, command
    if hasattr(command, "commands"):  # a group
        for name, child in command.commands.items():
            yield from commands(child, (*path, name))


def test_reflow_joins_lines_within_paragraphs_only() -> None:
    text = """First line
        goes on.

        Second   paragraph
        here."""
    assert reflow(text) == "First line goes on.\n\nSecond paragraph here."


def test_every_help_paragraph_is_one_line() -> None:
    root = typer.main.get_command(app)
    seen = 0
    for path, command in commands(root):
        for paragraph in (command.help or "").split("\n\n"):
            assert "\n" not in paragraph, (" ".join(path), paragraph)
        seen += 1
    assert seen > 15  # every command and group, nested ones included


def test_help_at_80_columns_has_no_overlong_line() -> None:
    root = typer.main.get_command(app)
    for path, _ in commands(root):
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, path
        assert max(len(line) for line in result.output.splitlines()) <= 80, path


def test_compare_is_a_visible_alias_of_report() -> None:
    root = typer.main.get_command(app)
    report, compare = root.commands["report"], root.commands["compare"]
    assert compare.help is not None and "Alias of `report`" in compare.help
    assert [p.name for p in compare.params] == [p.name for p in report.params]
    listing = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    assert "compare" in listing and "Alias of `report`" in listing
