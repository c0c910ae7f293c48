"""`adaptcommand baseline` and `adaptcommand eval`: turn-by-turn evaluation of the base model
and of trained adapters, with identical outputs so any two runs compare.

Library imports sit inside the commands: torch and transformers take seconds to import, and
`--help` should not wait for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from adaptcommand.cli.app import app
from adaptcommand.cli.options import parse_csv, parse_overrides

console = Console()

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="Evaluation config (JSON or YAML); default: the reference settings of "
    "configs/baseline_v1.0.json.")]
DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Directory written by `data prepare` (dialogs_clean.jsonl + edgesplits.json).")]
DialoguesOpt = Annotated[Path | None, typer.Option(
    "--dialogues", help="A cleaned JSONL (persona_id + messages a line) evaluated whole, "
    "instead of --data.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output directory (resumable).")]
PersonasOpt = Annotated[str | None, typer.Option(
    "--personas", help="Comma-separated persona ids to evaluate (default: all).")]
MaxOpt = Annotated[int | None, typer.Option(
    "--max-examples", min=1, help="Evaluate at most this many turns (quick runs).")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Base model, overriding the config: embedded, tiny-random, a local "
    "directory or an offline hub id.")]
SplitOpt = Annotated[str | None, typer.Option(
    "--split", help="train, val, test or cold_start (the held-out users); overrides "
    "evaluation.split.")]
SkipOpt = Annotated[int | None, typer.Option(
    "--skip-assistant-turns", min=0, help="Leading assistant turns of each session not "
    "evaluated (overrides the config; use 0 for short dialogues such as the real sample).")]
SampleOpt = Annotated[bool, typer.Option(
    "--sample", help="Sample with the config's temperature/top_p instead of greedy decoding.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override any config field, e.g. --set generation.batch_size=16.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Discard an existing run in --out made with a different config or data.")]
RetrievalOpt = Annotated[int, typer.Option(
    "--retrieval-k", min=0, help="Retrieval memory: put the persona's K most similar train "
    "exchanges into each prompt (needs --data; 0 = off). The arm name gets '+memory'.")]
ProfilesOpt = Annotated[Path | None, typer.Option(
    "--profiles", help="profiles.json (`routines mine`, train split) for prompts with "
    "prompt.profile=line; default: <persona_id>/profile.json next to the adapters. `baseline` "
    "without a profile prompt: the mined profile answers instead of a model.")]
ArmOpt = Annotated[str | None, typer.Option(
    "--arm", help="Name of this arm in reports (default: the training strategy, or baseline "
    "without adapters; '+memory' appended with --retrieval-k).")]


def cli_overrides(
    model: str | None, split: str | None, skip: int | None, sample: bool, extra: list[str] | None
) -> dict[str, object]:
    """Dedicated flags folded into the same dotted overrides as --set."""
    overrides = parse_overrides(extra)
    named = {
        "model.name": model,
        "evaluation.split": split,
        "evaluation.skip_assistant_turns": skip,
        "generation.do_sample": True if sample else None,
    }
    overrides.update({key: value for key, value in named.items() if value is not None})
    return overrides


@app.command()
def baseline(
    out: OutOpt,
    config: ConfigOpt = None,
    data: DataOpt = None,
    dialogues: DialoguesOpt = None,
    personas: PersonasOpt = None,
    max_examples: MaxOpt = None,
    model: ModelOpt = None,
    split: SplitOpt = None,
    skip_assistant_turns: SkipOpt = None,
    sample: SampleOpt = False,
    retrieval_k: RetrievalOpt = 0,
    profiles: ProfilesOpt = None,
    overrides: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Evaluate the base model turn by turn (ROUGE, embedding similarity, action P/R/F1, length).

    Writes results.json, per_persona_summary.csv and predictions.jsonl to --out; an interrupted
    run started again with the same command resumes where it stopped. With --profiles and no
    profile line in the prompt, the mined profile answers every turn instead of a model (arm
    `mined-profile`: the settings it states for the session's context), the ceiling of the
    profile arms.
    """
    from adaptcommand.arms.profile import uses_profile_prompt
    from adaptcommand.evaluation.runs import Scope, arm_name, evaluate_arm, resolve_config

    settings = resolve_config(
        config, cli_overrides(model, split, skip_assistant_turns, sample, overrides)
    )
    scope = Scope(data, dialogues, parse_csv(personas), max_examples)
    if profiles is not None and not uses_profile_prompt(settings):
        from adaptcommand.arms.profile_answer import evaluate_profile_answers

        if retrieval_k:
            raise typer.BadParameter("--profiles without a profile prompt answers from the "
                                     "profile alone: no --retrieval-k with it")
        console.print("No profile line in the prompt: the mined profile answers every turn, no "
                      "model (arm mined-profile).")
        report(evaluate_profile_answers(settings, scope, out, profiles_file=profiles,
                                        force=force), out)
        return
    name = arm_name(None, "baseline", retrieval_k, uses_profile_prompt(settings))
    results = evaluate_arm(settings, scope, out, name, retrieval_k=retrieval_k, force=force,
                           profiles_file=profiles)
    report(results, out)


@app.command("eval")
def evaluate(
    adapters: Annotated[Path, typer.Option(
        "--adapters", help="Adapters written by `train`: DIR/<persona_id>/ per user and/or "
        "DIR/unified/, or one adapter directory used for every persona.")],
    out: OutOpt,
    config: ConfigOpt = None,
    data: DataOpt = None,
    dialogues: DialoguesOpt = None,
    personas: PersonasOpt = None,
    max_examples: MaxOpt = None,
    model: ModelOpt = None,
    split: SplitOpt = None,
    skip_assistant_turns: SkipOpt = None,
    sample: SampleOpt = False,
    arm: ArmOpt = None,
    retrieval_k: RetrievalOpt = 0,
    profiles: ProfilesOpt = None,
    overrides: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Evaluate trained adapters exactly like `baseline`: each persona's turns are generated
    with that persona's adapter (else the unified adapter, else the base model), personas mixed
    in the same generation batch. The base model is the one the adapters were trained on unless
    --model says otherwise."""
    from adaptcommand.arms.profile import uses_profile_prompt
    from adaptcommand.evaluation.runs import Scope, adapter_settings, arm_name, evaluate_arm

    settings, strategy = adapter_settings(
        adapters, cli_overrides(model, split, skip_assistant_turns, sample, overrides), config
    )
    scope = Scope(data, dialogues, parse_csv(personas), max_examples)
    name = arm_name(arm, strategy, retrieval_k, uses_profile_prompt(settings))
    results = evaluate_arm(settings, scope, out, name, adapters=adapters,
                           retrieval_k=retrieval_k, force=force, profiles_file=profiles)
    report(results, out)


def report(results: dict[str, object], out: Path) -> None:
    from adaptcommand.cli.tables import print_headline

    print_headline(console, results)
    console.print(f"Results written to [bold]{out}[/]")
