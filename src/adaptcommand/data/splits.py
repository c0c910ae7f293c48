"""Per-persona temporal splits: each user's history is cut by time into train, val and test.

Splitting within each persona, in time order, means a model is always evaluated on sessions that
come after everything it trained on, for every user, which is what per-user adaptation needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field, ValidationInfo, field_validator

from adaptcommand.config import StrictModel
from adaptcommand.data.io import SPLIT_NAMES
from adaptcommand.data.schema import CleanDialogue

# Below this many sessions a persona cannot have one session in each of train, val and test.
MIN_SESSIONS_TO_SPLIT = 3


class SplitConfig(StrictModel):
    """How each persona's sessions, in time order, are cut; test takes what is left."""

    train_ratio: float = Field(0.6, gt=0, lt=1, description="Share of sessions for training.")
    val_ratio: float = Field(0.2, gt=0, lt=1, description="Share for validation, after train.")
    online_size: int = Field(
        10, ge=0, description="How many of the last train sessions form the online subset."
    )

    @field_validator("val_ratio")
    @classmethod
    def _leaves_room_for_test(cls, value: float, info: ValidationInfo) -> float:
        if info.data.get("train_ratio", 0.0) + value >= 1:
            raise ValueError("train_ratio + val_ratio must be below 1 to leave a test split")
        return value

    @property
    def test_ratio(self) -> float:
        return 1.0 - self.train_ratio - self.val_ratio


def split_sizes(n_sessions: int, config: SplitConfig) -> tuple[int, int, int]:
    """(train, val, test) session counts for one persona.

    The two cut points are the cumulative ratios times n, rounded half up, so the sizes always
    sum to n (50 sessions -> 30/10/10). With 3 or more sessions the cuts are clamped so every
    split gets at least one. With fewer, the first session trains and a second one is kept for
    test, so a thin persona is still both trained and evaluated; val stays empty.
    """
    if n_sessions < MIN_SESSIONS_TO_SPLIT:
        n_train = min(n_sessions, 1)
        return n_train, 0, n_sessions - n_train
    train_end = _clamp(_round_half_up(n_sessions * config.train_ratio), 1, n_sessions - 2)
    val_end = _clamp(
        _round_half_up(n_sessions * (config.train_ratio + config.val_ratio)),
        train_end + 1,
        n_sessions - 1,
    )
    return train_end, val_end - train_end, n_sessions - val_end


def compute_splits(
    dialogues: Sequence[CleanDialogue], config: SplitConfig
) -> dict[str, dict[str, list[int]]]:
    """persona_id -> {train, val, test, online} indices into `dialogues` (its line numbers).

    List order is time order within a persona; `online` is the last `online_size` train sessions.
    """
    by_persona: dict[str, list[int]] = {}
    for index, dialogue in enumerate(dialogues):
        by_persona.setdefault(dialogue.persona_id, []).append(index)
    return {pid: _persona_split(indices, config) for pid, indices in by_persona.items()}


def split_stats(
    dialogues: Sequence[CleanDialogue],
    splits: dict[str, dict[str, list[int]]],
    config: SplitConfig,
) -> dict[str, object]:
    """The content of `split_stats.json`: sizes, per-persona spread and turn counts per split."""
    stats: dict[str, object] = {
        "config": {
            "train_ratio": config.train_ratio,
            "val_ratio": config.val_ratio,
            "test_ratio": round(config.test_ratio, 6),
            "online_size": config.online_size,
        },
        "personas": len(splits),
        "sessions": len(dialogues),
    }
    for name in SPLIT_NAMES:
        per_persona = [len(entry[name]) for entry in splits.values()]
        messages = [
            m for entry in splits.values() for i in entry[name] for m in dialogues[i].messages
        ]
        stats[name] = {
            "sessions": sum(per_persona),
            "per_persona": {
                "min": min(per_persona, default=0),
                "max": max(per_persona, default=0),
                "mean": round(sum(per_persona) / len(per_persona), 3) if per_persona else 0.0,
            },
            "turns": len(messages),
            "assistant_turns": sum(m.role == "assistant" for m in messages),
        }
    return stats


def _persona_split(indices: list[int], config: SplitConfig) -> dict[str, list[int]]:
    n_train, n_val, _ = split_sizes(len(indices), config)
    train = indices[:n_train]
    return {
        "train": train,
        "val": indices[n_train : n_train + n_val],
        "test": indices[n_train + n_val :],
        "online": train[max(0, n_train - config.online_size) :],
    }


def _round_half_up(value: float) -> int:
    """Half up, not Python's half-to-even; the epsilon absorbs float noise such as 50 * 0.8."""
    return math.floor(value + 0.5 + 1e-9)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
