"""`adaptcommand actions ...`: smart-home action extraction from text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adaptcommand.cli.app import app
from adaptcommand.evaluation.actions import annotate_jsonl

actions_app = typer.Typer(help="Extract the smart-home settings messages commit to.",
                          no_args_is_help=True)
app.add_typer(actions_app, name="actions")


@actions_app.command("extract")
def extract(
    input_path: Annotated[Path, typer.Option(
        "--input", help="JSONL file; every line is an object with a text field.")],
    output_path: Annotated[Path, typer.Option(
        "--output", help="JSONL file to write: each input line plus its 'actions' "
        "({device: {param: value}}); written atomically.")],
    field: Annotated[str, typer.Option(
        "--field", help="Name of the field holding the message text.")] = "text",
) -> None:
    """Add the extracted actions to every line of a JSONL file."""
    count = annotate_jsonl(input_path, output_path, field=field)
    typer.echo(f"{count} lines -> {output_path}")
