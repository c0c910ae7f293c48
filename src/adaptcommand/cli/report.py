"""`adaptcommand report` (alias `compare`): compare evaluation runs and write the report."""

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


def report(
    runs: Annotated[list[Path], typer.Argument(
        help="Run directories written by `baseline` / `eval` (and `probe`). Runs evaluated on "
        "the same turns (data fingerprint, split, counts) form a group, e.g. `test` and "
        "`cold_start`; each group needs its own baseline.", show_default=False)],
    out: Annotated[Path, typer.Option(
        "--out", help="Directory for compare.json, summary.md, report.html and the figures.")],
    baseline: Annotated[list[Path] | None, typer.Option(
        "--baseline", help="The run its group's other runs are compared against; repeat once "
        "per group. Default: the group's run whose arm is `baseline`.")] = None,
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
    user_model: Annotated[list[Path] | None, typer.Option(
        "--user-model", help="A `routines curve` output and/or a `probe --profiles` output: "
        "adds the user-model sections (repeatable).")] = None,
) -> None:
    """Compare adapted arms with a baseline per persona (deltas, bootstrap CIs, sign test),
    decide pass/fail per arm, and write an HTML report with figures, summary.md and compare.json.
    Runs are grouped by what they were evaluated on (data fingerprint, evaluation split, turn
    counts), so test-split arms and cold_start arms fit in one report: each arm is compared only
    with its own group's baseline. The report opens with an all-arms table (metrics, lift,
    probe scores, training cost) and a cost-vs-benefit plot, then has sections per group."""
    settings = CompareSettings(
        metrics=parse_csv(metrics) or DEFAULTS.metrics,
        primary_metric=primary,
        guard_metrics=parse_csv(guards) or [],
        min_share_helped=min_helped,
        seed=seed,
    )
    files = build_report(runs, out, baseline=baseline or [], settings=settings, title=title,
                         user_model=user_model or [])
    several = len(files.comparisons) > 1
    for comparison in files.comparisons:
        for arm in comparison.arms:
            where = f"{comparison.group}: " if several else ""
            console.print(f"[bold]{where}{arm.run.label}[/]: {verdict_text(arm)}",
                          highlight=False)
    console.print(f"Report written to [bold]{files.html}[/]", soft_wrap=True)


app.command("report")(report)
app.command("compare", help="Alias of `report` (the same command and options).")(report)
