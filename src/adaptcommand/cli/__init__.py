"""Thin command-line interface: each pipeline stage is a sub-command calling its subpackage.

Importing a command module registers its sub-command on the root app.
"""

from adaptcommand.cli import (  # noqa: F401
    actions,
    data,
    demo,
    evaluate,
    export,
    merge,
    probe,
    report,
    routines,
    serve,
    train,
)
from adaptcommand.cli.app import app, reflow_help, run_app

reflow_help(app)  # after every command is registered

__all__ = ["app", "main"]


def main() -> None:
    run_app()
