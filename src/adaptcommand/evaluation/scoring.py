"""From prediction records to the numbers of results.json and per_persona_summary.csv.

Every metric has one flat name (`rougeL`, `device_f1`, ...) used globally and per persona, so
any two runs compare key by key. Intervals resample personas, then sessions within each drawn
persona (`stats.two_level_bootstrap_ci`): turns of one session share their context and sessions
of one user share that user, so neither is independent. Below `stats.MIN_USERS` personas an
interval is withheld (`low`/`high` null, `too_few_users` true); `n_users` is always given.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adaptcommand.evaluation.action_metrics import ActionScores, Counts, score_turn
from adaptcommand.evaluation.config import ScopeSettings
from adaptcommand.evaluation.embeddings import embedding_similarity
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


def _precision(sums: np.ndarray) -> np.ndarray:
    tp, fp = sums[..., 0], sums[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), np.nan)


def _recall(sums: np.ndarray) -> np.ndarray:
    return _precision(sums[..., [0, 2]])


RATIO_STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "precision": _precision, "recall": _recall, "f1": micro_f1,
}


def turn_rows(records: Sequence[dict[str, Any]], embedding_batch_size: int) -> list[dict[str, Any]]:
    """Per-turn text metrics and action scores, in record order."""
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
    for name in HEADLINE_COUNTS:
        kind, ratio = name.rsplit("_", 1)
        sums = np.zeros((len(sessions), 3))
        for row in rows:
            counts: Counts = getattr(row["actions"], kind)
            sums[position[row["session"]]] += (counts.tp, counts.fp, counts.fn)
        statistic = RATIO_STATISTICS[ratio]
        defined = not np.isnan(statistic(sums.sum(axis=0)))
        intervals[name] = (interval(sums, statistic) if defined else
                           {"estimate": None, "low": None, "high": None,
                            "n_users": len(blocks), "too_few_users": too_few_users(len(blocks))})
    return intervals


def _interval_dict(interval: Interval) -> dict[str, Any]:
    def clean(value: float | None) -> float | None:
        return None if value is None or np.isnan(value) else value

    return {"estimate": clean(interval.estimate), "low": clean(interval.low),
            "high": clean(interval.high), "n_users": interval.n_users,
            "too_few_users": interval.too_few_users}


def score_records(records: Sequence[dict[str, Any]], settings: ScopeSettings) -> dict[str, Any]:
    """Global metrics with CIs, per-device confusion counts and per-persona metrics."""
    rows = turn_rows(records, settings.embedding_batch_size)
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
