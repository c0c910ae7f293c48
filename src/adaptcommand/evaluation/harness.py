"""The turn-by-turn evaluation shared by `baseline` and `eval`: generate, extract, score, write.

Predictions are appended as they are made, so a run that is interrupted resumes with only the
missing turns; the scores are computed once every turn has a prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from adaptcommand.crashpoints import pause_point
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.personal_values import Key, PersonalTurn, personal_turns
from adaptcommand.evaluation.predictions import PredictionLog, finalize, load_partial, record_key
from adaptcommand.evaluation.predictor import Predictor
from adaptcommand.evaluation.scoring import score_records, write_per_persona_csv
from adaptcommand.evaluation.turns import Turn
from adaptcommand.fileio import write_json_atomic
from adaptcommand.identity import check_resume

PREDICTIONS = "predictions.jsonl"
RESULTS = "results.json"
PER_PERSONA_CSV = "per_persona_summary.csv"
RUN_CONFIG = "eval_config.json"
CHUNK_BATCHES = 32
"""Turns handed to the predictor at once, in batches: bounds the prompts held in memory."""
Breakdowns = Callable[[Sequence[dict[str, Any]], Mapping[Key, PersonalTurn]], dict[str, Any]]
"""Extra sections of results.json from the final records and each turn's personal values."""


def progress_bar() -> Progress:
    """The progress display used by every long stage: count, bar, elapsed and ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


def turn_record(turn: Turn, prediction: str) -> dict[str, Any]:
    return {
        "persona_id": turn.persona_id,
        "session_id": turn.session_id,
        "turn_index": turn.turn_index,
        "prediction": prediction,
        "reference": turn.reference,
        "prediction_actions": extract_actions(prediction),
        "reference_actions": extract_actions(turn.reference),
    }


def check_resumable(out_dir: Path, run_identity: dict[str, Any], force: bool) -> None:
    """Refuse to mix predictions of a different config or data into an existing run directory
    (every field of the run's identity must match); `force` discards the old predictions."""
    if force:
        (out_dir / PREDICTIONS).unlink(missing_ok=True)
    else:
        check_resume(out_dir / RUN_CONFIG, run_identity,
                     "use another --out, or --force to discard it", subject="config or data")
    write_json_atomic(out_dir / RUN_CONFIG, run_identity)


def predict_turns(
    turns: Sequence[Turn],
    predictor: Predictor,
    out_dir: Path,
    chunk_size: int,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Predictions for every turn, reusing those already in `out_dir` from an interrupted run.

    Each prediction is logged as soon as it is final, so an interruption loses only the replies
    still being generated, and chunks can be large: continuous batching keeps its batch full
    across a whole chunk and reuses a session's earlier prompts, which short chunks would cut.
    """
    path = out_dir / PREDICTIONS
    wanted = {turn.key for turn in turns}
    done = {key: rec for key, rec in load_partial(path).items() if key in wanted}
    pending = [turn for turn in turns if turn.key not in done]
    log = PredictionLog(path, done)
    try:
        with progress_bar() as progress:
            task = progress.add_task(
                "generating", total=len(turns), completed=len(done), visible=show_progress
            )
            for start in range(0, len(pending), chunk_size):
                chunk = pending[start : start + chunk_size]

                def finished(index: int, reply: str, chunk: Sequence[Turn] = chunk) -> None:
                    record = turn_record(chunk[index], reply)
                    log.append([record])
                    done[record_key(record)] = record
                    progress.advance(task)
                    pause_point("eval.predict")

                predictor(chunk, finished)
    finally:
        log.close()
    return [done[turn.key] for turn in turns]


def run_evaluation(
    turns: Sequence[Turn],
    predictor: Predictor,
    config: EvalConfig,
    out_dir: Path,
    run_info: dict[str, Any],
    *,
    force: bool = False,
    show_progress: bool = True,
    breakdowns: Breakdowns | None = None,
) -> dict[str, Any]:
    """Evaluate `turns` and write results.json, per_persona_summary.csv and predictions.jsonl;
    `breakdowns` adds sections to results.json (e.g. a growing profile's `by_sessions_seen`)."""
    if not turns:
        raise AdaptCommandError("no assistant turns to evaluate (check --split, --personas "
                                "and skip_assistant_turns)")
    out_dir.mkdir(parents=True, exist_ok=True)
    identity = {"config": config.model_dump(), **run_info}
    check_resumable(out_dir, identity, force)
    chunk = config.generation.batch_size * CHUNK_BATCHES
    records = predict_turns(turns, predictor, out_dir, chunk, show_progress)
    finalize(out_dir / PREDICTIONS, records)
    personal = personal_turns(turns, config.prompt.max_context_messages)
    scores = score_records(records, config.evaluation, personal)
    results = {**identity, **scores, **(breakdowns(records, personal) if breakdowns else {})}
    write_per_persona_csv(out_dir / PER_PERSONA_CSV, scores["per_persona"])
    write_json_atomic(out_dir / RESULTS, results)
    return results
