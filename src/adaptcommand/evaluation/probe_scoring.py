"""Scores of a recalled routine against the routine itself: the right devices, the right
parameters, and values close enough to the user's own.

Like `action_metrics`, counts are summed and ratios taken last, so per-persona and overall
(micro) numbers come from the same `RecallScores` by addition; a ratio without a denominator
is `None`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adaptcommand.evaluation.action_metrics import ActionDict, Counts

VALUE_TOLERANCES: dict[tuple[str, str], int] = {
    ("ac", "temperature"): 1,  # degrees, 16..30
    ("ac", "fan_speed"): 1,  # 0..3
    ("tv", "volume"): 5,  # the 0..100 scales
    ("tv", "brightness"): 5,
    ("lights", "brightness"): 5,
    ("speaker", "volume"): 5,
    ("security", "alarm_volume"): 5,
}
"""Largest absolute difference at which a numeric value still counts as the user's (a routine
recalled as 21 degrees instead of 22 is remembered, as 26 it is not). Every other parameter
(modes, colors, sources, equalizer, armed) must match exactly."""

RECALL_METRICS = ("device_precision", "device_recall", "device_f1", "param_recall",
                  "value_accuracy")


def value_matches(device: str, param: str, predicted: object, expected: object) -> bool:
    """Whether a recalled value counts as the routine's, under `VALUE_TOLERANCES`."""
    tolerance = VALUE_TOLERANCES.get((device, param))
    if tolerance is None or not _is_number(predicted) or not _is_number(expected):
        return type(predicted) is type(expected) and predicted == expected
    return abs(predicted - expected) <= tolerance  # type: ignore[operator]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class RecallScores:
    """Counts over any number of probed routines; add two to pool them."""

    routines: int = 0
    device: Counts = field(default_factory=Counts)
    params: int = 0  # (device, param) pairs the routines set
    present: int = 0  # ... that the reply sets too, to any value
    correct: int = 0  # ... that the reply sets to a matching value

    def __add__(self, other: RecallScores) -> RecallScores:
        return RecallScores(self.routines + other.routines, self.device + other.device,
                            self.params + other.params, self.present + other.present,
                            self.correct + other.correct)

    def metrics(self) -> dict[str, float | None]:
        """The flat ratios of `RECALL_METRICS`."""
        return {
            "device_precision": self.device.precision,
            "device_recall": self.device.recall,
            "device_f1": self.device.f1,
            "param_recall": _share(self.present, self.params),
            "value_accuracy": _share(self.correct, self.params),
        }

    def to_dict(self) -> dict[str, Any]:
        """Counts and ratios of one item, for probe_predictions.jsonl."""
        counts = {"device_tp": self.device.tp, "device_fp": self.device.fp,
                  "device_fn": self.device.fn, "params": self.params, "present": self.present,
                  "correct": self.correct}
        return {**counts, **self.metrics()}


def _share(hits: int, due: int) -> float | None:
    """hits / due as a recall, so "nothing due" is `None` exactly as in `action_metrics`."""
    return Counts(tp=hits, fn=due - hits).recall


def score_recall(predicted: ActionDict, routine: ActionDict) -> RecallScores:
    """Scores of one reply's extracted actions against one routine's actions."""
    expected = [(device, param, value) for device, settings in routine.items()
                for param, value in settings.items()]
    present = [(d, p, v) for d, p, v in expected if p in predicted.get(d, {})]
    correct = [(d, p) for d, p, v in present if value_matches(d, p, predicted[d][p], v)]
    return RecallScores(
        routines=1,
        device=Counts.of_sets(set(predicted), set(routine)),
        params=len(expected),
        present=len(present),
        correct=len(correct),
    )
