"""`adaptcommand demo`: the main job end to end (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adaptcommand.cli.app import app

console = Console()


@app.command()
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
) -> None:
    """Synthesize data, prepare it, evaluate the base model, train unified, per-user and hybrid
    adapters, evaluate and probe each, and write the comparison report. Started again, it
    resumes."""
    from adaptcommand.demo import DemoPlan, run_demo

    plan = DemoPlan.full(source, all_arms) if full else DemoPlan.small()
    report = run_demo(out, plan, console, all_arms)
    console.print(f"\n[bold green]Demo finished.[/] Report: [bold]{report / 'report.html'}[/] "
                  f"(summary: {report / 'summary.md'})")
