"""From prediction records to the numbers of results.json and per_persona_summary.csv.

Every metric has one flat name (`rougeL`, `device_f1`, ...) used globally and per persona, so
any two runs compare key by key. Intervals resample personas, then sessions within each drawn
persona (`stats.two_level_bootstrap_ci`): turns of one session share their context and sessions
of one user share that user, so neither is independent. Below `stats.MIN_USERS` personas an
interval is withheld (`low`/`high` null, `too_few_users` true); `n_users` is always given.
Personal-value metrics (`evaluation.personal_values`) are added when the caller passes each
turn's `PersonalTurn`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from adaptcommand.evaluation.action_metrics import ActionScores, Counts, score_turn
from adaptcommand.evaluation.config import ScopeSettings
from adaptcommand.evaluation.embeddings import embedding_similarity
from adaptcommand.evaluation.personal_values import (
    PersonalTurn,
    personal_metrics,
    score_personal,
)
from adaptcommand.evaluation.predictions import record_key
from adaptcommand.evaluation.stats import (
    Interval,
    mean_of_sums,
    micro_f1,
    too_few_users,
    two_level_bootstrap_ci,
)
from adaptcommand.evaluation.text_metrics import length_stats, rouge_scores
from adaptcommand.fileio import write_text_atomic

TEXT_METRICS = ("rouge1", "rouge2", "rougeL", "embedding_similarity", "pred_words", "ref_words")
COUNT_KINDS = ("device", "param", "numeric", "categorical")
RATIOS = ("precision", "recall", "f1")
HEADLINE_TEXT = ("rouge1", "rouge2", "rougeL", "embedding_similarity")
HEADLINE_COUNTS = (
    "device_precision", "device_recall", "device_f1",
    "param_precision", "param_recall", "param_f1",
    "numeric_precision", "numeric_f1", "categorical_f1",
)
HEADLINE_PERSONAL = ("personal_precision", "personal_recall", "personal_recall_implicit",
                     "personal_recall_explicit")


def _precision(sums: np.ndarray) -> np.ndarray:
    tp, fp = sums[..., 0], sums[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), np.nan)


def _recall(sums: np.ndarray) -> np.ndarray:
    return _precision(sums[..., [0, 2]])


RATIO_STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "precision": _precision, "recall": _recall, "f1": micro_f1,
}


def turn_rows(records: Sequence[dict[str, Any]], embedding_batch_size: int,
              personal: Mapping[tuple[str, int, int], PersonalTurn] | None = None
              ) -> list[dict[str, Any]]:
    """Per-turn text metrics and action scores (and personal-value scores when `personal` has
    the turn), in record order."""
    predictions = [r["prediction"] for r in records]
    references = [r["reference"] for r in records]
    rouge = rouge_scores(predictions, references)
    similarity = embedding_similarity(predictions, references, batch_size=embedding_batch_size)
    lengths = length_stats(predictions, references)
    rows = []
    for record, r, sim, length in zip(records, rouge, similarity, lengths, strict=True):
        rows.append({
            "persona_id": record["persona_id"],
            "session": (record["persona_id"], record["session_id"]),
            **r,
            "embedding_similarity": sim,
            "pred_words": length["pred_words"],
            "ref_words": length["ref_words"],
            "actions": score_turn(record["prediction_actions"], record["reference_actions"]),
        })
        turn = personal.get(record_key(record)) if personal else None
        if turn is not None:
            rows[-1]["personal"] = (turn, score_personal(record["prediction_actions"], turn))
    return rows


def flat_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of the text metrics and pooled (micro) action metrics over `rows`."""
    actions: ActionScores = sum((row["actions"] for row in rows), ActionScores())
    flat: dict[str, Any] = {"n_turns": len(rows), "n_sessions": len({r["session"] for r in rows})}
    flat.update({name: float(np.mean([row[name] for row in rows])) for name in TEXT_METRICS})
    for kind in COUNT_KINDS:
        counts: Counts = getattr(actions, kind)
        flat.update({f"{kind}_{ratio}": getattr(counts, ratio) for ratio in RATIOS})
    flat["numeric_mae"] = actions.mae
    if rows and all("personal" in row for row in rows):
        flat.update(personal_metrics(row["personal"] for row in rows))
    return flat


def confidence_intervals(rows: Sequence[dict[str, Any]], settings: ScopeSettings) -> dict:
    """Two-level (persona, session) bootstrap intervals of the headline metrics:
    {metric: {estimate, low, high, n_users, too_few_users}}."""
    sessions = sorted({row["session"] for row in rows})
    position = {session: i for i, session in enumerate(sessions)}
    by_persona: dict[str, list[int]] = {}
    for i, (persona, _) in enumerate(sessions):
        by_persona.setdefault(persona, []).append(i)
    blocks = list(by_persona.values())
    options = {"n_resamples": settings.bootstrap_resamples, "confidence": settings.confidence,
               "seed": settings.seed}

    def interval(sums: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray]) -> dict:
        return _interval_dict(two_level_bootstrap_ci([sums[b] for b in blocks], statistic,
                                                     **options))

    intervals: dict[str, dict[str, Any]] = {}
    for name in HEADLINE_TEXT:
        sums = np.zeros((len(sessions), 2))
        for row in rows:
            sums[position[row["session"]]] += (row[name], 1.0)
        intervals[name] = interval(sums, mean_of_sums)
    for name, (ratio, counts_of) in _counted_metrics(rows).items():
        sums = np.zeros((len(sessions), 3))
        for row in rows:
            counts = counts_of(row)
            if counts is not None:
                sums[position[row["session"]]] += (counts.tp, counts.fp, counts.fn)
        statistic = RATIO_STATISTICS[ratio]
        defined = not np.isnan(statistic(sums.sum(axis=0)))
        intervals[name] = (interval(sums, statistic) if defined else
                           {"estimate": None, "low": None, "high": None,
                            "n_users": len(blocks), "too_few_users": too_few_users(len(blocks))})
    return intervals


CountsOf = Callable[[dict[str, Any]], Counts | None]


def _counted_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[str, CountsOf]]:
    """Count-based headline metrics: name -> (ratio, the row's counts or None to skip it)."""
    def action_counts(kind: str) -> CountsOf:
        return lambda row: getattr(row["actions"], kind)

    def personal_counts(group: str | None) -> CountsOf:
        def counts_of(row: dict[str, Any]) -> Counts | None:
            turn, scores = row["personal"]
            return scores.counts if group in (None, turn.group) else None
        return counts_of

    counted = {name: (name.rsplit("_", 1)[1], action_counts(name.rsplit("_", 1)[0]))
               for name in HEADLINE_COUNTS}
    if rows and all("personal" in row for row in rows):
        for name in HEADLINE_PERSONAL:  # personal_<ratio>[_<group>]
            parts = name.split("_")
            counted[name] = (parts[1], personal_counts(parts[2] if len(parts) > 2 else None))
    return counted


def _interval_dict(interval: Interval) -> dict[str, Any]:
    def clean(value: float | None) -> float | None:
        return None if value is None or np.isnan(value) else value

    return {"estimate": clean(interval.estimate), "low": clean(interval.low),
            "high": clean(interval.high), "n_users": interval.n_users,
            "too_few_users": interval.too_few_users}


def score_records(records: Sequence[dict[str, Any]], settings: ScopeSettings,
                  personal: Mapping[tuple[str, int, int], PersonalTurn] | None = None
                  ) -> dict[str, Any]:
    """Global metrics with CIs, per-device confusion counts and per-persona metrics; with
    `personal` (every record's `PersonalTurn` by key) also the personal-value metrics."""
    rows = turn_rows(records, settings.embedding_batch_size, personal)
    by_persona: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_persona.setdefault(row["persona_id"], []).append(row)
    pooled: ActionScores = sum((row["actions"] for row in rows), ActionScores())
    return {
        "counts": {"turns": len(rows), "sessions": len({r["session"] for r in rows}),
                   "personas": len(by_persona)},
        "metrics": flat_metrics(rows),
        "confidence_intervals": confidence_intervals(rows, settings),
        "actions": pooled.to_dict(),
        "per_persona": {pid: flat_metrics(group) for pid, group in by_persona.items()},
    }


def per_persona_csv(per_persona: dict[str, dict[str, Any]]) -> str:
    """One row per persona, one column per flat metric (empty where undefined)."""
    buffer = io.StringIO()
    if not per_persona:
        return ""
    columns = ["persona_id", *next(iter(per_persona.values()))]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for pid, metrics in per_persona.items():
        writer.writerow({"persona_id": pid, **{k: _csv_value(v) for k, v in metrics.items()}})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    return "" if value is None else (round(value, 6) if isinstance(value, float) else value)


def write_per_persona_csv(path: Any, per_persona: dict[str, dict[str, Any]]) -> None:
    write_text_atomic(path, per_persona_csv(per_persona))
