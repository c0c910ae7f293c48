"""`adaptcommand demo`: the main job end to end (what `make demo` runs)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adaptcommand.arms import list_arms
from adaptcommand.cli.app import app
from adaptcommand.cli.options import deprecations_shown

console = Console()


def arms_epilog() -> str:
    """`demo --help`'s list of arms, from the registry (one paragraph per arm)."""
    return "Arms:\n\n" + "\n\n".join(f"{key} [{group}]: {description}"
                                      for key, group, description in list_arms())


@app.command(epilog=arms_epilog())
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where everything is written.")] = Path(
        "demo_output"
    ),
    full: Annotated[bool, typer.Option(
        "--full", help="The reference setup instead of the CPU-sized demo: 200 users x 50 "
        "sessions, Qwen/Qwen2.5-0.5B-Instruct, reference LoRA settings (needs a GPU and the "
        "model in the local Hugging Face cache).")] = False,
    source: Annotated[Path | None, typer.Option(
        "--source", help="With --full: the real EdgeWisePersona files (characters.jsonl, "
        "routines.jsonl, sessions.jsonl) instead of synthetic ones.")] = None,
    all_arms: Annotated[bool, typer.Option(
        "--all-arms", help="Every arm, not only unified/per-user/hybrid LoRA: retrieval memory "
        "(with and without per-user adapters), cluster adapters, prefix tuning (unified and "
        "per-user), and for held-out new users a cold-start baseline, the unified adapter and "
        "merged adapters. Run after a plain demo into the same --out, it only adds the other "
        "arms.")] = False,
    study: Annotated[bool, typer.Option(
        "--study", help="The study of --study-config instead of the demo: every profile arm "
        "(profile line, profile-trained and distilled adapters, OPPU, new users' profiles) next "
        "to baseline, unified, per-user and hybrid, on enough users to decide, with one overall "
        "progress line (stage, done/total, ETA).")] = False,
    study_config: Annotated[Path, typer.Option(
        "--study-config", help="The study plan --study runs (see docs/results/README.md).")]
        = Path("configs/study.json"),
    list_arms: Annotated[bool, typer.Option(
        "--list-arms", help="List every arm (name, group, description) and exit.")] = False,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Stages run at once (as make -j), each in its own process "
        "with its share of the torch threads; a stage waits for the ones it reads. Default: the "
        "study config's `jobs`, else 1. On a 2-core CPU, 2 finish the study sooner "
        "(BENCHMARKS.md).")] = None,
) -> None:
    """Synthesize data, prepare it, evaluate the base model, train unified, per-user and hybrid
    adapters, evaluate and probe each, and write the comparison report. Started again, it
    resumes."""
    from adaptcommand.demo import DemoPlan, run_demo

    if list_arms:
        print_arms()
        return
    if study:
        from adaptcommand.study import load_study

        with deprecations_shown(study_config):
            plan = load_study(study_config)
    else:
        plan = DemoPlan.full(source, all_arms) if full else DemoPlan.small()
    if jobs is not None:
        plan = replace(plan, jobs=jobs)
    report = run_demo(out, plan, console, all_arms, study=study)
    console.print(f"\n[bold green]Demo finished.[/] Report: [bold]{report / 'report.html'}[/] "
                  f"(summary: {report / 'summary.md'})")


def print_arms() -> None:
    """Every registered arm as a table: name, group, description."""
    from rich.table import Table

    table = Table("arm", "group", "description")
    for key, group, description in list_arms():
        table.add_row(key, group, description)
    console.print(table)
