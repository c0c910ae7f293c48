"""Scores of predicted against reference smart-home actions, summed over turns.

Counts, not ratios, are what gets summed, so per-persona and global scores come from the same
`ActionScores` by addition and micro averages stay exact. Conventions when a ratio has no
denominator (reported as `None`, JSON `null`, never as 0 or 1):

- precision = TP / (TP + FP): `None` when nothing was predicted;
- recall = TP / (TP + FN): `None` when the reference has nothing;
- F1 = 2 TP / (2 TP + FP + FN): `None` only when both sides are empty (so predicting nothing
  against a non-empty reference scores 0, not "undefined");
- MAE over numeric parameters set in both prediction and reference: `None` when there are none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adaptcommand.config import first_error
from adaptcommand.data.schema import NUMERIC_PARAMS, Actions, actions_dict
from adaptcommand.errors import DataError
from adaptcommand.fileio import read_jsonl

ActionDict = Mapping[str, Mapping[str, object]]
Triple = tuple[str, str, object]


@dataclass
class Counts:
    """True positives, false positives and false negatives of one kind of item."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @classmethod
    def of_sets(cls, predicted: set[Any], reference: set[Any]) -> Counts:
        return cls(len(predicted & reference), len(predicted - reference),
                   len(reference - predicted))

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def to_dict(self) -> dict[str, Any]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


@dataclass
class ActionScores:
    """Action-metric counts over any number of turns; add two to pool them."""

    turns: int = 0
    device: Counts = field(default_factory=Counts)
    param: Counts = field(default_factory=Counts)  # (device, param, value) triples
    numeric: Counts = field(default_factory=Counts)  # triples of schema.NUMERIC_PARAMS
    categorical: Counts = field(default_factory=Counts)  # every other triple
    per_device: dict[str, Counts] = field(default_factory=dict)
    abs_error_sum: float = 0.0
    abs_error_count: int = 0

    def __add__(self, other: ActionScores) -> ActionScores:
        merged = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in fields(self) if f.name != "per_device"
        }
        per_device = dict(self.per_device)
        for device, counts in other.per_device.items():
            per_device[device] = per_device.get(device, Counts()) + counts
        return ActionScores(**merged, per_device=dict(sorted(per_device.items())))

    @property
    def mae(self) -> float | None:
        """Mean absolute error of numeric values set in both prediction and reference."""
        return _ratio(self.abs_error_sum, self.abs_error_count)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form for results files; ratios without a denominator are None."""
        return {
            "turns": self.turns,
            "device": self.device.to_dict(),
            "param": self.param.to_dict(),
            "numeric": self.numeric.to_dict(),
            "categorical": self.categorical.to_dict(),
            "per_device": {device: c.to_dict() for device, c in self.per_device.items()},
            "numeric_mae": self.mae,
            "numeric_mae_count": self.abs_error_count,
        }


def score_turn(predicted: ActionDict, reference: ActionDict) -> ActionScores:
    """Counts for one turn's predicted and reference `{device: {param: value}}`."""
    per_device = {
        device: Counts.of_sets({device} & set(predicted), {device} & set(reference))
        for device in sorted(set(predicted) | set(reference))
    }
    pred_triples, ref_triples = _triples(predicted), _triples(reference)
    is_numeric = _is_numeric_triple
    pred_numbers, ref_numbers = _numeric_values(predicted), _numeric_values(reference)
    errors = [abs(pred_numbers[k] - ref_numbers[k]) for k in pred_numbers.keys() & ref_numbers]
    return ActionScores(
        turns=1,
        device=Counts.of_sets(set(predicted), set(reference)),
        param=Counts.of_sets(pred_triples, ref_triples),
        numeric=Counts.of_sets({t for t in pred_triples if is_numeric(t)},
                               {t for t in ref_triples if is_numeric(t)}),
        categorical=Counts.of_sets({t for t in pred_triples if not is_numeric(t)},
                                   {t for t in ref_triples if not is_numeric(t)}),
        per_device=per_device,
        abs_error_sum=float(sum(errors)),
        abs_error_count=len(errors),
    )


def score_turns(pairs: Iterable[tuple[ActionDict, ActionDict]]) -> ActionScores:
    """Pooled scores of (predicted, reference) pairs."""
    return sum((score_turn(p, r) for p, r in pairs), ActionScores())


def score_labelled_jsonl(
    path: str | Path,
    extract: Callable[[str], ActionDict],
    *,
    text_field: str = "text",
    label_field: str = "actions",
    group_field: str | None = "role",
) -> dict[str, ActionScores]:
    """Score `extract` on a hand-labelled JSONL (e.g. gold_actions_dev.jsonl): scores for "all"
    plus one per value of `group_field` (user / assistant). Labels are checked against the
    schema, so a typo in the gold file fails with its line instead of skewing the numbers."""
    scores: dict[str, ActionScores] = {}
    for line, row in read_jsonl(path):
        text = row.get(text_field)
        if not isinstance(text, str):
            raise DataError("missing or not a string", path=path, line=line, field=text_field)
        try:
            reference = actions_dict(Actions.model_validate(row.get(label_field)))
        except ValidationError as exc:
            name, message = first_error(exc)
            raise DataError(message, path=path, line=line, field=f"{label_field}.{name}") from None
        turn = score_turn(extract(text), reference)
        groups = ["all"] + ([str(row.get(group_field))] if group_field else [])
        for group in groups:
            scores[group] = scores.get(group, ActionScores()) + turn
    return scores


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _triples(actions: ActionDict) -> set[Triple]:
    return {(d, p, v) for d, settings in actions.items() for p, v in settings.items()}


def _is_numeric_triple(triple: Triple) -> bool:
    return (triple[0], triple[1]) in NUMERIC_PARAMS


def _numeric_values(actions: ActionDict) -> dict[tuple[str, str], float]:
    return {
        (d, p): float(v) for d, settings in actions.items() for p, v in settings.items()
        if (d, p) in NUMERIC_PARAMS and isinstance(v, int | float) and not isinstance(v, bool)
    }
