"""`adaptcommand data ...`: prepare and synthesize EdgeWisePersona-layout data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from adaptcommand.cli.app import app
from adaptcommand.cli.options import parse_overrides
from adaptcommand.config import first_error
from adaptcommand.data.prepare import PrepareSummary, prepare_from_dialogues, prepare_from_source
from adaptcommand.data.splits import SplitConfig
from adaptcommand.data.synth import STATS_FILE, SynthConfig, synthesize
from adaptcommand.errors import AdaptCommandError, DataError

data_app = typer.Typer(help="Prepare the EdgeWisePersona dataset or synthesize one in its layout.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

_SPLIT_DEFAULTS = SplitConfig()


@data_app.command("prepare")
def prepare(
    out: Annotated[Path, typer.Option(
        "--out", help="Output directory for dialogs_clean.jsonl, edgesplits.json, "
        "split_stats.json and validation_report.json.")],
    source: Annotated[Path | None, typer.Option(
        "--source", help="Directory holding characters.jsonl, routines.jsonl and "
        "sessions.jsonl (line i of each = user i).")] = None,
    dialogues: Annotated[Path | None, typer.Option(
        "--dialogues", help="Already-cleaned dialogue JSONL (persona_id and messages per line; "
        "file order = time order) to split instead of --source.")] = None,
    train_ratio: Annotated[float, typer.Option(
        "--train-ratio", help="Share of each persona's sessions used for training.")
    ] = _SPLIT_DEFAULTS.train_ratio,
    val_ratio: Annotated[float, typer.Option(
        "--val-ratio", help="Share for validation (test gets the rest).")
    ] = _SPLIT_DEFAULTS.val_ratio,
    online_size: Annotated[int, typer.Option(
        "--online-size", help="Number of latest train sessions in the online subset.")
    ] = _SPLIT_DEFAULTS.online_size,
    cold_start_personas: Annotated[int, typer.Option(
        "--cold-start-personas", help="Hold this many personas (a seeded random choice) out of "
        "all training, as new users: their first sessions form the cold_start split, the rest "
        "are unused. Must be below the number of personas.")
    ] = _SPLIT_DEFAULTS.cold_start_personas,
    cold_start_sessions: Annotated[int, typer.Option(
        "--cold-start-sessions", help="How many of a held-out persona's first sessions (in time "
        "order) form its cold_start split.")] = _SPLIT_DEFAULTS.cold_start_sessions,
    cold_start_seed: Annotated[int, typer.Option(
        "--cold-start-seed", help="Seed of the choice of held-out personas.")
    ] = _SPLIT_DEFAULTS.seed,
) -> None:
    """Clean sessions and split each persona's history by time into train/val/test
    (optionally holding some personas out of training as cold-start users).

    Exits 2 on bad input (nothing written), 1 if a validation check failed (files written).
    """
    if (source is None) == (dialogues is None):
        raise AdaptCommandError("give exactly one of --source or --dialogues")
    try:
        split = SplitConfig(train_ratio=train_ratio, val_ratio=val_ratio, online_size=online_size,
                            cold_start_personas=cold_start_personas,
                            cold_start_sessions=cold_start_sessions, seed=cold_start_seed)
    except ValidationError as exc:
        field, message = first_error(exc)
        flag = "--cold-start-seed" if field == "seed" else "--" + field.replace("_", "-")
        raise DataError(message, field=flag) from None
    if source is not None:
        summary = prepare_from_source(source, out, split)
    else:
        summary = prepare_from_dialogues(dialogues, out, split)
    _print_summary(summary)
    if not summary.validation_passed:
        raise typer.Exit(1)


def _print_summary(summary: PrepareSummary) -> None:
    console = Console()
    dropped = ", ".join(f"{reason} {n}" for reason, n in summary.dropped_by_reason.items() if n)
    console.print(f"sessions: {summary.sessions_read} read, {summary.sessions_kept} kept"
                  + (f" (dropped: {dropped})" if dropped else ""), highlight=False)
    table = Table("split", "sessions")
    for name, size in summary.split_sizes.items():
        table.add_row(name, str(size))
    console.print(table)
    status = "[green]passed[/]" if summary.validation_passed else (
        "[bold red]FAILED[/] (" + ", ".join(summary.failed_checks) + ")")
    console.print(f"validation: {status}, {len(summary.warnings)} warnings", highlight=False)
    for warning in summary.warnings[:5]:
        console.print(f"  [yellow]warning:[/] {warning}", highlight=False)
    if len(summary.warnings) > 5:
        console.print(f"  ... see {summary.files[-1]}", highlight=False)
    console.print(f"wrote {', '.join(p.name for p in summary.files)} to {summary.out}",
                  highlight=False, soft_wrap=True)


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option(
        "--out", help="Output directory for characters.jsonl, routines.jsonl, sessions.jsonl "
        "and synth_stats.json.")],
    personas: Annotated[int, typer.Option(
        "--personas", min=1, help="Number of users (one line of each file per user).")] = 200,
    sessions: Annotated[int, typer.Option(
        "--sessions", min=1, help="Sessions per user, in time order.")] = 50,
    seed: Annotated[int, typer.Option(
        "--seed", help="Random seed; the same seed writes byte-identical files.")] = 0,
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="Real sample in the cleaned format (e.g. cold_start_dev.jsonl) to "
        "measure distinct-n on; default: the figures recorded from it.")] = None,
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="An imperfection share, e.g. --set tweak_rate=0.1 (repeatable): "
        + ", ".join(SynthConfig.model_fields) + ". README, 'Synthetic data', documents each.")
    ] = None,
    clean: Annotated[bool, typer.Option(
        "--clean", help="Every imperfection off (users replay their routines exactly), before "
        "any --set.")] = False,
) -> None:
    """Synthesize a dataset in the EdgeWisePersona layout and compare it with the published one."""
    base = SynthConfig.clean() if clean else SynthConfig()
    try:
        config = SynthConfig.model_validate({**base.model_dump(), **parse_overrides(overrides)})
    except ValidationError as exc:
        field, message = first_error(exc)
        raise DataError(message, field=f"--set {field}") from None
    summary = synthesize(personas, sessions, seed, out, reference=reference, config=config)
    console = Console()
    table = Table("statistic", "generated", "published / real", title="synthetic corpus")
    for name, value in summary.stats.items():
        published = summary.published.get(name)
        table.add_row(name, f"{value:g}", "" if published is None else f"{published:g}")
    for name, value in summary.distinct.items():
        table.add_row(name, f"{value:g}", f"{summary.distinct_real.get(name, float('nan')):g}")
    console.print(table)
    shares = ", ".join(f"{name} {value:g}" for name, value in summary.imperfections.items())
    console.print(f"imperfections: {shares}", highlight=False, soft_wrap=True)
    console.print(f"distinct-n: first 5 messages of one session for up to 100 users, real column "
                  f"from {summary.real_source}", highlight=False)
    console.print(f"wrote characters.jsonl, routines.jsonl, sessions.jsonl, {STATS_FILE} to "
                  f"{summary.out_dir}", highlight=False, soft_wrap=True)
