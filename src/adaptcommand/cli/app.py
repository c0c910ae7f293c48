"""Root `adaptcommand` command; turns user-facing errors into one line and an exit code."""

from __future__ import annotations

import inspect
import os
import sys
import warnings

import typer
from rich.console import Console

from adaptcommand import __version__
from adaptcommand.errors import AdaptCommandError

app = typer.Typer(
    name="adaptcommand",
    help="Personalize a small smart-home assistant model to each user with LoRA adapters, "
    "and measure whether it helps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"adaptcommand {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Personalize a small smart-home assistant model to each user."""


def reflow(text: str | None) -> str | None:
    """Each paragraph of a docstring on one line: typer keeps a docstring's line breaks, which
    rich would wrap again into ragged lines; unbroken paragraphs fill any terminal width."""
    if not text:
        return text
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


def reflow_help(typer_app: typer.Typer) -> None:
    """Reflow the help of `typer_app`, its commands and its command groups (see `reflow`)."""
    typer_app.info.help = reflow(typer_app.info.help)
    for command in typer_app.registered_commands:
        command.help = reflow(command.help or inspect.getdoc(command.callback))
    for group in typer_app.registered_groups:
        group.help = reflow(group.help)
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def run_app() -> None:
    """Entry point: a user-facing error becomes one red line and exit code 2."""
    # Our own progress bars say what is happening; the libraries' per-load bars are noise.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")
    try:
        app(standalone_mode=False)
    except AdaptCommandError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: typer's bundled click exceptions
        exc.show()
        sys.exit(exc.exit_code)
