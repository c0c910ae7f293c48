"""Thin command-line interface: each pipeline stage is a sub-command calling its subpackage.

Importing a command module registers its sub-command on the root app.
"""

from adaptcommand.cli import (  # noqa: F401
    actions,
    data,
    demo,
    evaluate,
    merge,
    probe,
    report,
    routines,
    serve,
    train,
)
from adaptcommand.cli.app import app, run_app

__all__ = ["app", "main"]


def main() -> None:
    run_app()
