"""Example turns for the report: where an arm got the actions right that the baseline missed."""

from __future__ import annotations

from dataclasses import dataclass

from adaptcommand.report.run_results import Key, PredictionRecord


@dataclass(frozen=True)
class FixedTurn:
    """One turn, with the baseline's and the arm's predictions next to the reference."""

    key: Key
    baseline: PredictionRecord
    arm: PredictionRecord


def fixed_turns(
    baseline: dict[Key, PredictionRecord], arm: dict[Key, PredictionRecord], limit: int = 5
) -> list[FixedTurn]:
    """Turns whose reference commits to actions that the arm extracts exactly and the baseline
    does not; taken round-robin over personas in turn order, so they show several users."""
    fixed = [
        FixedTurn(key, baseline[key], arm[key])
        for key in sorted(baseline.keys() & arm.keys())
        if baseline[key].reference_actions
        and arm[key].prediction_actions == arm[key].reference_actions
        and baseline[key].prediction_actions != baseline[key].reference_actions
    ]
    count: dict[str, int] = {}
    ranked = []
    for turn in fixed:
        rank = count.get(turn.key[0], 0)
        count[turn.key[0]] = rank + 1
        ranked.append(((rank, turn.key), turn))
    return [turn for _, turn in sorted(ranked, key=lambda pair: pair[0])][:limit]
