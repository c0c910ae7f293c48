"""`adaptcommand routines ...`: mine each user's routines from their history, and score them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from adaptcommand.cli.app import app
from adaptcommand.cli.options import parse_csv
from adaptcommand.data.io import SPLIT_NAMES
from adaptcommand.errors import AdaptCommandError

routines_app = typer.Typer(help="The user model: routines mined from each user's sessions, "
                           "scored on EdgeWisePersona's routine-reconstruction task.",
                           no_args_is_help=True)
app.add_typer(routines_app, name="routines")
console = Console()


@routines_app.command("mine")
def mine(
    data: Annotated[Path, typer.Option("--data", help="A `data prepare` output directory.")],
    out: Annotated[Path, typer.Option(
        "--out", help="Output directory for routines.jsonl, profiles.json and mining.json.")],
    split: Annotated[str, typer.Option(
        "--split", help=f"Sessions to mine from: one of {', '.join(SPLIT_NAMES)}.")] = "train",
    max_sessions: Annotated[int | None, typer.Option(
        "--max-sessions", help="Use only each persona's most recent N sessions of the split.")
    ] = None,
    min_support: Annotated[int, typer.Option(
        "--min-support", help="Sessions that must show a routine (and agree on each of its "
        "values) for it to be kept; 1 keeps a routine seen once unless a better one explains "
        "its session.")] = 1,
    method: Annotated[str, typer.Option(
        "--method", help="miner (rules over the extracted end states) or llm (a language "
        "model reads the history).")] = "miner",
    model: Annotated[str | None, typer.Option(
        "--model", help="Model of --method llm (default: embedded).")] = None,
) -> None:
    """Mine each persona's routines from the messages and context of one split (never its
    routines, applied routines or summaries). Writes OUT/routines.jsonl (line i = persona i,
    the EdgeWisePersona layout), OUT/profiles.json (routines with per-setting support and
    confidence, the sessions each came from, common settings outside routines) and
    OUT/mining.json."""
    from adaptcommand.routines.mining import MiningSettings
    from adaptcommand.routines.run import mine_data

    if split not in SPLIT_NAMES:
        raise AdaptCommandError(f"--split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
    if method not in ("miner", "llm"):
        raise AdaptCommandError(f"--method {method!r} is not available (choose: miner, llm)")
    if model is not None and method != "llm":
        raise AdaptCommandError("--model applies to --method llm only")
    if method == "llm":
        from adaptcommand.routines.llm import LlmSettings, predict_data

        summary = predict_data(data, out, split=split, max_sessions=max_sessions,  # type: ignore[arg-type]
                               settings=LlmSettings(model=model or "embedded"))
    else:
        settings = MiningSettings(min_support=min_support, max_sessions=max_sessions)
        summary = mine_data(data, out, split=split, settings=settings)  # type: ignore[arg-type]
    console.print(f"Mined {summary['routines']} routines for {len(summary['personas_mined'])} "
                  f"personas from {summary['sessions']} {split} sessions in "
                  f"{summary['seconds']:.1f} s; written to [bold]{escape(str(out))}[/]")


@routines_app.command("score")
def score(
    pred: Annotated[Path, typer.Option(
        "--pred", help="Predicted routines: routines.jsonl (line i = persona i) or a "
        "profiles.json written by `routines mine`.")],
    truth: Annotated[Path | None, typer.Option(
        "--truth", help="True routines in the routines.jsonl layout; default: the routines of "
        "the prepared data (--data, else the data mining.json next to --pred names).")] = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="A `data prepare` directory whose routines are the truth.")] = None,
    personas: Annotated[str | None, typer.Option(
        "--personas", help="Comma-separated persona ids to score (default: those mined from at "
        "least one session, else every persona of the truth).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the scores (default: routine_scores.json next to "
        "--pred).")] = None,
) -> None:
    """EdgeWisePersona's metrics: each true routine against its best-Jaccard prediction; exact
    routine, exact triggers, exact actions, Jaccard, per-field accuracy, numeric MAE, per persona
    and overall with 95% persona-bootstrap intervals."""
    from adaptcommand.routines.run import score_files

    if truth is not None and data is not None:
        raise AdaptCommandError("give at most one of --truth and --data")
    scores = score_files(pred, truth=truth, data=data, personas=parse_csv(personas), out=out)
    print_scores(scores)


def print_scores(scores: dict[str, Any]) -> None:
    """The overall metrics with their intervals."""
    from adaptcommand.cli.tables import metrics_table

    counts = scores["counts"]
    console.print(metrics_table(
        f"routines: {counts['true_routines']} true, {counts['predicted_routines']} predicted, "
        f"{counts['personas']} personas",
        scores["metrics"], scores["confidence_intervals"], "95% CI (personas)"))


@routines_app.command("curve")
def curve(
    data: Annotated[Path, typer.Option("--data", help="A `data prepare` output directory.")],
    out: Annotated[Path, typer.Option(
        "--out", help="Output directory for curve.json, curve.md and curve.png.")],
    methods: Annotated[str, typer.Option(
        "--methods", help="Comma-separated: miner, llm.")] = "miner,llm",
    points: Annotated[str, typer.Option(
        "--points", help="Sessions used per persona (most recent train sessions); `all` = "
        "every train session.")] = "5,10,20,all",
    model: Annotated[str, typer.Option("--model", help="Model of the llm rows.")] = "embedded",
    llm_personas: Annotated[int, typer.Option(
        "--llm-personas", help="The llm rows (and matching miner rows) use the first N "
        "personas: the LLM is slow on a CPU.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(
        "--max-new-tokens", help="Answer budget of the llm rows.")] = 512,
    max_prompt_tokens: Annotated[int, typer.Option(
        "--max-prompt-tokens", help="Prompt cap of the llm rows (the oldest sessions that do "
        "not fit are left out).")] = 2048,
) -> None:
    """Learning curve: every routine-reconstruction metric against the sessions used, for the
    miner (all personas) and the LLM (the first --llm-personas), beside the published rows.
    Give OUT to `compare --user-model OUT` to put it in the report."""
    from adaptcommand.routines.curve import CurveSettings, row_label, run_curve, sessions_label
    from adaptcommand.routines.llm import LlmSettings

    settings = CurveSettings(
        points=[None if p == "all" else int(p) for p in parse_csv(points) or []],
        methods=parse_csv(methods) or [],  # type: ignore[arg-type]
        llm_personas=llm_personas,
        llm=LlmSettings(model=model, max_new_tokens=max_new_tokens, max_routines=6,
                        max_prompt_tokens=max_prompt_tokens))

    def show(row: dict[str, Any]) -> None:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in row["metrics"].items() if v is not None)
        console.print(f"{row_label(row)}, {sessions_label(row)} sessions "
                      f"({row['seconds']:.1f} s): {metrics}", highlight=False)

    run_curve(data, out, settings, show=show)
    console.print(f"Curve written to [bold]{escape(str(out))}[/]")
