"""`adaptcommand merge`: adapters for users without training data, merged from similar users'."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from adaptcommand.cli.app import app
from adaptcommand.cli.options import parse_csv


@app.command("merge")
def merge(
    adapters: Annotated[Path, typer.Option(
        "--adapters", help="Output of a per-user or hybrid `train` run: the adapters merged "
        "from (its manifest gives the base model and prompt).")],
    data: Annotated[Path, typer.Option(
        "--data", help="Directory from `data prepare` the adapters were trained on (with "
        "--cold-start-personas for the default targets).")],
    out: Annotated[Path, typer.Option(
        "--out", help="Output directory: one PEFT adapter per target persona, manifest.json "
        "and training_summary.json; evaluate it with `eval --adapters OUT`.")],
    k: Annotated[int, typer.Option(
        "--k", min=1, help="How many of the most similar trained users to merge.")] = 3,
    personas: Annotated[str | None, typer.Option(
        "--personas", help="Comma-separated target persona ids (default: every held-out "
        "persona of `data prepare --cold-start-personas`).")] = None,
) -> None:
    """Give each new user a LoRA adapter without training: the adapters of the K trained users
    whose first messages (first user message of each of the first 3 sessions, MiniLM cosine) are
    most similar, summed exactly with weights = similarities clipped at 0, normalised to 1. A new
    user's messages come from its cold_start_profile sessions only, never from the cold_start
    sessions it is evaluated on."""
    from adaptcommand.arms.merged import merge_adapters

    summary = merge_adapters(adapters, data, out, k=k, personas=parse_csv(personas))
    table = Table("persona", "merged from (weight, similarity)", title=f"merged adapters in {out}")
    for name, record in summary["adapters"].items():
        table.add_row(name, ", ".join(
            f"{source} ({weight:.2f}, {similarity:.2f})" for source, weight, similarity
            in zip(record["merged_from"], record["weights"], record["similarities"], strict=True)))
    Console().print(table)
