"""`adaptcommand data ...`: prepare and synthesize EdgeWisePersona-layout data."""

from __future__ import annotations

import typer

from adaptcommand.cli.app import app

data_app = typer.Typer(help="Prepare the EdgeWisePersona dataset or synthesize one in its layout.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")
