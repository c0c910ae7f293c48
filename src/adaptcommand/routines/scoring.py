"""EdgeWisePersona's routine-reconstruction metrics, per persona and overall.

As published: each true routine is matched to the predicted routine of the same user with the
highest Jaccard similarity of their flattened `field=value` sets (null fields left out; ties go
to the earlier prediction); then exact routine (triggers and actions both equal), exact
triggers, exact actions, Jaccard, per-field accuracy (share of the true routine's fields the
match has with the same value) and numeric MAE (over numeric action parameters both set),
averaged over true routines. Intervals come from a persona bootstrap (`evaluation.stats`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adaptcommand.config import first_error
from adaptcommand.data.io import RoutinesLine, persona_id
from adaptcommand.data.schema import NUMERIC_PARAMS, Routine, actions_dict
from adaptcommand.errors import DataError
from adaptcommand.evaluation.stats import bootstrap_ci, mean_of_sums
from adaptcommand.fileio import read_jsonl
from adaptcommand.routines.profile import read_profiles

Item = tuple[str, str, Any]  # ("triggers" | device, field or param, value)
RATE_METRICS = ("exact_routine", "exact_triggers", "exact_actions", "jaccard", "field_accuracy")
METRICS = (*RATE_METRICS, "numeric_mae")


@dataclass(frozen=True)
class RoutineMatch:
    """One true routine against its best-Jaccard prediction (None: the user has none)."""

    jaccard: float
    exact_routine: bool
    exact_triggers: bool
    exact_actions: bool
    field_accuracy: float
    abs_errors: tuple[float, ...]
    predicted: int | None


def flatten(routine: Routine) -> frozenset[Item]:
    """A routine as its set of set fields: ("triggers", field, value) and (device, param, value)."""
    triggers = {("triggers", f, v) for f, v in routine.triggers.model_dump().items()
                if v is not None}
    actions = {(device, param, value) for device, params in actions_dict(routine.actions).items()
               for param, value in params.items()}
    return frozenset(triggers | actions)


def jaccard(a: frozenset[Item], b: frozenset[Item]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def match_routine(truth: Routine, predictions: Sequence[Routine]) -> RoutineMatch:
    """Score one true routine against the prediction with the highest Jaccard."""
    true_items = flatten(truth)
    if not predictions:
        return RoutineMatch(0.0, False, False, False, 0.0, (), None)
    flat = [flatten(p) for p in predictions]
    best = max(range(len(flat)), key=lambda i: (jaccard(true_items, flat[i]), -i))
    pred_items = flat[best]
    true_fields = {(a, b): v for a, b, v in true_items}
    pred_fields = {(a, b): v for a, b, v in pred_items}
    correct = sum(pred_fields.get(key, _MISSING) == v for key, v in true_fields.items())
    errors = tuple(float(abs(pred_fields[key] - v)) for key, v in true_fields.items()
                   if key in NUMERIC_PARAMS and key in pred_fields)

    def part(items: frozenset[Item], triggers: bool) -> frozenset[Item]:
        return frozenset(i for i in items if (i[0] == "triggers") == triggers)

    return RoutineMatch(
        jaccard=jaccard(true_items, pred_items),
        exact_routine=true_items == pred_items,
        exact_triggers=part(true_items, True) == part(pred_items, True),
        exact_actions=part(true_items, False) == part(pred_items, False),
        field_accuracy=correct / len(true_fields) if true_fields else 1.0,
        abs_errors=errors,
        predicted=best,
    )


def _rows(matches: Sequence[RoutineMatch]) -> dict[str, tuple[float, float]]:
    """(sum, count) per metric for one persona: rates over routines, MAE over numeric pairs."""
    rows = {name: (float(sum(getattr(m, name) for m in matches)), float(len(matches)))
            for name in RATE_METRICS}
    errors = [e for m in matches for e in m.abs_errors]
    rows["numeric_mae"] = (float(sum(errors)), float(len(errors)))
    return rows


def score_routines(
    pred: Mapping[str, Sequence[Routine]],
    truth: Mapping[str, Sequence[Routine]],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics per persona of `truth` (a persona missing from `pred` predicted nothing) and
    overall (averaged over all true routines; numeric MAE over all numeric pairs), with 95%
    persona-bootstrap intervals."""
    per_persona: dict[str, dict[str, Any]] = {}
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in METRICS}
    matched = unmatched = 0
    for pid, routines in truth.items():
        predictions = list(pred.get(pid, []))
        matches = [match_routine(r, predictions) for r in routines]
        persona_rows = _rows(matches)
        for name, row in persona_rows.items():
            if row[1] > 0:
                rows[name].append(row)
        used = {m.predicted for m in matches if m.predicted is not None}
        matched += len(used)
        unmatched += len(predictions) - len(used)
        per_persona[pid] = {
            "routines": len(routines), "predicted": len(predictions),
            **{name: (s / n if n else None) for name, (s, n) in persona_rows.items()},
        }
    metrics: dict[str, float | None] = {}
    intervals: dict[str, dict[str, float]] = {}
    for name in METRICS:
        if not rows[name]:
            metrics[name] = None
            continue
        interval = bootstrap_ci(rows[name], mean_of_sums, n_resamples=n_resamples, seed=seed)
        metrics[name] = interval.estimate
        intervals[name] = {"low": interval.low, "high": interval.high,
                           "n_personas": interval.n_clusters}
    return {
        "counts": {"personas": len(truth), "true_routines": sum(map(len, truth.values())),
                   "predicted_routines": matched + unmatched,
                   "unmatched_predictions": unmatched},
        "metrics": metrics,
        "confidence_intervals": intervals,
        "per_persona": per_persona,
    }


def read_routines_file(path: str | Path) -> dict[str, list[Routine]]:
    """Routines per persona from `routines.jsonl` (line i = `persona_{i:03d}`, the dataset's
    layout) or from a `profiles.json` written by `routines mine` (persona ids as written)."""
    path = Path(path)
    if path.suffix == ".json":
        return {pid: [r.to_routine() for r in profile.routines]
                for pid, profile in read_profiles(path).items()}
    routines: dict[str, list[Routine]] = {}
    for index, (line, raw) in enumerate(read_jsonl(path)):
        try:
            routines[persona_id(index)] = RoutinesLine.model_validate(raw).routines
        except ValidationError as exc:
            field, message = first_error(exc)
            raise DataError(message, path=path, line=line, field=field) from None
    if not routines:
        raise DataError("file is empty", path=path)
    return routines


_MISSING = object()
