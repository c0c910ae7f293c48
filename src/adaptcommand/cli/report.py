"""`adaptcommand compare` (alias `report`): compare evaluation runs and write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adaptcommand.cli.app import app
from adaptcommand.cli.options import parse_csv
from adaptcommand.report.build import DEFAULT_TITLE, build_report
from adaptcommand.report.compare import CompareSettings
from adaptcommand.report.markdown import verdict_text

console = Console()
DEFAULTS = CompareSettings()


def compare(
    runs: Annotated[list[Path], typer.Argument(
        help="Run directories written by `baseline` / `eval`; the first is the baseline unless "
        "--baseline names one.", show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="Directory for compare.json, summary.md, report.html and the figures.")],
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="The run every other run is compared against.")] = None,
    metrics: Annotated[str | None, typer.Option(
        "--metrics", help="Comma-separated metrics to report (default: the eight headline "
        "metrics).")] = None,
    primary: Annotated[str, typer.Option(
        "--primary", help="Metric of the success bar (share of personas helped).")]
        = DEFAULTS.primary_metric,
    guards: Annotated[str, typer.Option(
        "--guards", help="Comma-separated metrics that must not regress for an arm to pass.")]
        = ",".join(DEFAULTS.guard_metrics),
    min_helped: Annotated[float, typer.Option(
        "--min-helped", min=0.01, max=1.0, help="Share of personas the primary metric must "
        "improve for an arm to pass.")] = DEFAULTS.min_share_helped,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = DEFAULTS.seed,
    title: Annotated[str, typer.Option("--title", help="Title of the report.")]
        = DEFAULT_TITLE,
) -> None:
    """Compare adapted arms with a baseline per persona (deltas, bootstrap CIs, sign test),
    decide pass/fail per arm, and write an HTML report with figures, summary.md and compare.json.
    All runs must be evaluated on the same data and turns."""
    settings = CompareSettings(
        metrics=parse_csv(metrics) or DEFAULTS.metrics,
        primary_metric=primary,
        guard_metrics=parse_csv(guards) or [],
        min_share_helped=min_helped,
        seed=seed,
    )
    files = build_report(runs, out, baseline=baseline, settings=settings, title=title)
    for arm in files.comparison.arms:
        console.print(f"[bold]{arm.run.label}[/]: {verdict_text(arm)}", highlight=False)
    console.print(f"Report written to [bold]{files.html}[/]", soft_wrap=True)


app.command("compare")(compare)
app.command("report")(compare)
