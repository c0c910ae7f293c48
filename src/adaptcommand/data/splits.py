"""Per-persona temporal splits: each user's history is cut by time into train, val and test.

Splitting within each persona, in time order, means a model is always evaluated on sessions that
come after everything it trained on, for every user, which is what per-user adaptation needs.

Optionally some personas are held out of all training (`cold_start_personas`): they stand for
brand-new users, so nothing of theirs is trained or validated on. Their first sessions form
`cold_start_profile`, all a new user has shown so far (the merge compares users on it), and the
sessions after those form `cold_start`, the only ones evaluated: no evaluated answer comes from
an adapter chosen by looking at the session it answers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from pydantic import Field, ValidationInfo, field_validator

from adaptcommand.config import StrictModel
from adaptcommand.data.io import COLD_START_SPLITS, SPLIT_NAMES
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.errors import DataError

# Below this many sessions a persona cannot have one session in each of train, val and test.
MIN_SESSIONS_TO_SPLIT = 3


class SplitConfig(StrictModel):
    """How each persona's sessions, in time order, are cut; test takes what is left."""

    train_ratio: float = Field(0.6, gt=0, lt=1, description="Share of sessions for training.")
    val_ratio: float = Field(0.2, gt=0, lt=1, description="Share for validation, after train.")
    cold_start_personas: int = Field(
        0, ge=0, description="How many personas are held out of all training as new users."
    )
    cold_start_profile_sessions: int = Field(
        3, ge=1, description="How many of a held-out persona's first sessions form its "
        "cold_start_profile split: what a merge may read about the new user; never evaluated."
    )
    cold_start_sessions: int = Field(
        10, ge=1, description="How many of a held-out persona's sessions after its profile "
        "sessions form its cold_start split (evaluated); its later sessions are left unused."
    )
    seed: int = Field(0, description="Seed of the choice of held-out personas.")

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
    """persona_id -> {train, val, test} indices into `dialogues` (its line numbers); a
    held-out persona gets empty splits plus `cold_start_profile` and `cold_start` (see
    `held_out_personas`). List order is time order within a persona.
    """
    by_persona: dict[str, list[int]] = {}
    for index, dialogue in enumerate(dialogues):
        by_persona.setdefault(dialogue.persona_id, []).append(index)
    held_out = set(held_out_personas(list(by_persona), config))
    return {
        pid: _cold_start_split(indices, config) if pid in held_out
        else _persona_split(indices, config)
        for pid, indices in by_persona.items()
    }


def held_out_personas(personas: Sequence[str], config: SplitConfig) -> list[str]:
    """The `cold_start_personas` personas held out of training, in the order given.

    A seeded sample over the sorted ids, not the last N: the file order of users may carry
    meaning (e.g. how they were collected), and the choice must not depend on it. At least one
    persona must stay trainable.
    """
    wanted = config.cold_start_personas
    if not wanted:
        return []
    if wanted >= len(personas):
        raise DataError(
            f"cannot hold out {wanted} personas for cold start: there are {len(personas)}, and "
            "at least one must remain for training", field="cold_start_personas",
        )
    chosen = set(random.Random(config.seed).sample(sorted(personas), wanted))
    return [pid for pid in personas if pid in chosen]


def split_stats(
    dialogues: Sequence[CleanDialogue],
    splits: dict[str, dict[str, list[int]]],
    config: SplitConfig,
) -> dict[str, object]:
    """The content of `split_stats.json`: sizes, per-persona spread and turn counts per split.

    The cold-start settings, held-out personas and cold-start splits appear only when personas
    are held out. The per-persona spread of the cold-start splits is over the held-out personas,
    that of the others over the personas that were not held out.
    """
    held_out = [pid for pid, entry in splits.items() if entry.get("cold_start")]
    settings: dict[str, object] = {
        "train_ratio": config.train_ratio,
        "val_ratio": config.val_ratio,
        "test_ratio": round(config.test_ratio, 6),
    }
    if held_out:
        settings |= {"cold_start_personas": config.cold_start_personas,
                     "cold_start_profile_sessions": config.cold_start_profile_sessions,
                     "cold_start_sessions": config.cold_start_sessions, "seed": config.seed}
    stats: dict[str, object] = {"config": settings, "personas": len(splits),
                                "sessions": len(dialogues)}
    if held_out:
        stats["held_out_personas"] = held_out
    for name in SPLIT_NAMES:
        if name in COLD_START_SPLITS and not held_out:
            continue
        entries = [entry for pid, entry in splits.items()
                   if (pid in held_out) == (name in COLD_START_SPLITS)]
        per_persona = [len(entry.get(name, [])) for entry in entries]
        messages = [
            m for entry in entries for i in entry.get(name, []) for m in dialogues[i].messages
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
    return {
        "train": indices[:n_train],
        "val": indices[n_train : n_train + n_val],
        "test": indices[n_train + n_val :],
    }


def _cold_start_split(indices: list[int], config: SplitConfig) -> dict[str, list[int]]:
    """A held-out persona: nothing to train on; its first sessions are its profile, the next
    ones are evaluated."""
    profile_end = config.cold_start_profile_sessions
    return {"train": [], "val": [], "test": [],
            "cold_start_profile": indices[:profile_end],
            "cold_start": indices[profile_end : profile_end + config.cold_start_sessions]}


def _round_half_up(value: float) -> int:
    """Half up, not Python's half-to-even; the epsilon absorbs float noise such as 50 * 0.8."""
    return math.floor(value + 0.5 + 1e-9)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
