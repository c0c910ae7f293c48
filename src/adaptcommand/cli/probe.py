"""`adaptcommand probe`: the preference probe (routine recall from trigger context alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from adaptcommand.cli.app import app
from adaptcommand.cli.evaluate import (
    ArmOpt,
    ConfigOpt,
    DataOpt,
    DialoguesOpt,
    ModelOpt,
    PersonasOpt,
    RetrievalOpt,
    SetOpt,
    cli_overrides,
)
from adaptcommand.cli.options import parse_csv

console = Console()


@app.command()
def probe(
    out: Annotated[Path, typer.Option(
        "--out", help="Output directory; give an arm's eval run directory to show the probe "
        "next to its turn metrics in the report (eval files are left untouched).")],
    adapters: Annotated[Path | None, typer.Option(
        "--adapters", help="Adapters written by `train` (routed per persona like `eval`); "
        "without it the base model is probed.")] = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    dialogues: DialoguesOpt = None,
    personas: PersonasOpt = None,
    model: ModelOpt = None,
    arm: ArmOpt = None,
    retrieval_k: RetrievalOpt = 0,
    overrides: SetOpt = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Probe again even when --out holds a finished identical probe.")] = False,
    profiles: Annotated[Path | None, typer.Option(
        "--profiles", help="profiles.json of `routines mine`. For an arm whose prompts carry "
        "a profile line (prompt.profile=line): the profiles its probe prompts read, as in "
        "`eval` (default: <persona_id>/profile.json next to the adapters). Otherwise: answer "
        "each probe with what the profile line states for its context instead of a model "
        "(arm `mined-profile`).")] = None,
    request: Annotated[str | None, typer.Option(
        "--request", help="The probe's request after the context sentence (default: \"Set "
        "things up the way I like.\"); another wording checks that an arm did not just learn "
        "the default's form.")] = None,
) -> None:
    """Ask for each routine of each persona with its trigger context only ("It's a rainy, cold
    weekday evening after sunset. Set things up the way I like.") and score the reply's actions
    against the routine: device P/R/F1, parameter recall and value accuracy (numbers within a
    tolerance), per persona and overall, with persona-bootstrap intervals. Decoding is greedy.
    Writes probe.json and probe_predictions.jsonl to --out. Needs data with routines.
    A profile arm's probe prompts carry its profile line for the probe's context, built as in
    `eval`. With --profiles and no profile prompt, the mined user model answers instead, so the
    report shows what it knows before any language model is involved."""
    from adaptcommand.arms.profile import uses_profile_prompt
    from adaptcommand.arms.profile_answer import PROFILE_ANSWER_ARM
    from adaptcommand.evaluation.probe import PROBE_REQUEST, run_probe, run_profile_probe
    from adaptcommand.evaluation.runs import Scope, adapter_settings, arm_name, resolve_config
    from adaptcommand.models.profile_prompt import uses_profile

    named = cli_overrides(model, None, None, False, overrides)
    scope = Scope(data, dialogues, parse_csv(personas))
    if adapters is None:
        settings, default = resolve_config(config, named), "baseline"
    else:
        settings, default = adapter_settings(adapters, named, config)
    if profiles is not None and not uses_profile(settings.prompt):
        if adapters is not None or retrieval_k:
            raise typer.BadParameter("--profiles replaces the model: no --adapters or "
                                     "--retrieval-k with it")
        print_probe(run_profile_probe(settings, scope, out, profiles,
                                      arm=arm or PROFILE_ANSWER_ARM))
        console.print(f"Probe written to [bold]{out}[/]")
        return
    name = arm_name(arm, default, retrieval_k, uses_profile_prompt(settings))
    result = run_probe(settings, scope, out, name, adapters=adapters, retrieval_k=retrieval_k,
                       force=force, profiles_file=profiles, request=request or PROBE_REQUEST)
    print_probe(result)
    console.print(f"Probe written to [bold]{out}[/]")


def print_probe(result: dict[str, Any]) -> None:
    """The overall probe metrics with the intervals that were computed."""
    from adaptcommand.cli.tables import metrics_table

    counts = result["counts"]
    console.print(metrics_table(
        f"probe {result['arm']}: {counts['routines']} routines, {counts['personas']} personas",
        result["metrics"], result["confidence_intervals"], "95% CI (personas)"))
