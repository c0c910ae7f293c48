"""results.json intervals: a two-level (persona, session) bootstrap, withheld below MIN_USERS."""

from __future__ import annotations

import numpy as np
import pytest

from adaptcommand.evaluation.action_metrics import score_turn
from adaptcommand.evaluation.config import ScopeSettings
from adaptcommand.evaluation.scoring import HEADLINE_COUNTS, HEADLINE_TEXT, confidence_intervals
from adaptcommand.evaluation.stats import MIN_USERS, mean_of_sums, two_level_bootstrap_ci


def _rows(n_personas: int, seed: int = 0) -> list[dict]:
    """Turn rows as `turn_rows` makes them: 1..4 sessions per persona, 1..3 turns each."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_personas):
        for s in range(int(rng.integers(1, 5))):
            for _ in range(int(rng.integers(1, 4))):
                value = float(rng.uniform())
                right = bool(rng.uniform() < 0.7)
                rows.append({
                    "persona_id": f"persona_{p:03d}", "session": (f"persona_{p:03d}", s),
                    **{name: value for name in HEADLINE_TEXT},
                    "actions": score_turn({"lights": {"brightness": 40 if right else 50}},
                                          {"lights": {"brightness": 40}}),
                })
    return rows


def test_intervals_are_the_two_level_bootstrap_over_personas_and_sessions() -> None:
    rows = _rows(12)
    settings = ScopeSettings(bootstrap_resamples=300, seed=4)
    intervals = confidence_intervals(rows, settings)
    sessions = sorted({row["session"] for row in rows})
    by_persona: dict[str, list[np.ndarray]] = {}
    for session in sessions:
        values = [row["rougeL"] for row in rows if row["session"] == session]
        by_persona.setdefault(session[0], []).append(np.array([sum(values), len(values)]))
    expected = two_level_bootstrap_ci([np.array(b) for b in by_persona.values()], mean_of_sums,
                                      n_resamples=300, seed=4)
    got = intervals["rougeL"]
    assert (got["estimate"], got["low"], got["high"]) == pytest.approx(
        (expected.estimate, expected.low, expected.high))
    assert got["n_users"] == 12 and got["too_few_users"] is False
    param = intervals["param_f1"]
    assert param["low"] <= param["estimate"] <= param["high"]


def test_below_min_users_every_interval_is_null_with_its_reason() -> None:
    intervals = confidence_intervals(_rows(MIN_USERS - 1), ScopeSettings(bootstrap_resamples=50))
    assert set(intervals) == {*HEADLINE_TEXT, *HEADLINE_COUNTS}
    for interval in intervals.values():
        assert (interval["low"], interval["high"]) == (None, None)
        assert interval["n_users"] == MIN_USERS - 1 and interval["too_few_users"] is True
    assert intervals["embedding_similarity"]["estimate"] is not None
