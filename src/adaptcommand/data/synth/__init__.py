"""Synthetic EdgeWisePersona: characters, routines and sessions in the real three-file layout.

`synthesize` writes `characters.jsonl`, `routines.jsonl`, `sessions.jsonl` (line i = user i) and
`synth_stats.json` into a directory that `data prepare --source` reads unchanged. Pure Python and
a seeded `random.Random` per user: the same seed gives byte-identical files, and user i is the same
person whatever the number of users.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from adaptcommand.data.schema import Character, Routine, Session
from adaptcommand.data.synth.config import SynthConfig
from adaptcommand.data.synth.personas import character_text, make_persona
from adaptcommand.data.synth.routines import make_habits, make_routines
from adaptcommand.data.synth.sessions import SessionFacts, make_sessions
from adaptcommand.data.synth.stats import (
    PUBLISHED,
    REAL_SAMPLE_DISTINCT,
    comparable_texts,
    corpus_stats,
    distinct_profile,
    reference_texts,
)
from adaptcommand.errors import DataError
from adaptcommand.fileio import write_json_atomic, write_jsonl_atomic

__all__ = ["STATS_FILE", "SessionFacts", "SynthConfig", "SynthSummary", "User", "generate_user",
           "synthesize"]

STATS_FILE = "synth_stats.json"


@dataclass(frozen=True)
class SynthSummary:
    """What `synthesize` wrote and measured (also the content of `synth_stats.json`)."""

    out_dir: Path
    n_personas: int
    n_sessions: int
    seed: int
    stats: dict[str, float]
    published: dict[str, float]
    distinct: dict[str, float]
    distinct_real: dict[str, float]
    real_source: str
    config: SynthConfig
    imperfections: dict[str, float]

    def to_json(self) -> dict[str, object]:
        return {
            "personas": self.n_personas, "sessions_per_user": self.n_sessions, "seed": self.seed,
            "config": self.config.model_dump(), "imperfections": self.imperfections,
            "generated": self.stats, "published": self.published,
            "distinct": {"generated": self.distinct, "real_sample": self.distinct_real,
                         "real_source": self.real_source},
        }


class User(NamedTuple):
    """One generated user; `facts[i]` is what the generator knows about `sessions[i]` (the
    settings it commits to, which imperfections it has) and the files do not say."""

    character: Character
    routines: list[Routine]
    sessions: list[Session]
    facts: list[SessionFacts]


def generate_user(seed: int, user: int, n_sessions: int,
                  config: SynthConfig | None = None) -> User:
    """One user's character, routines and sessions; depends only on (seed, user, n_sessions,
    config)."""
    config = config or SynthConfig()
    rng = random.Random(f"adaptcommand-synth:{seed}:{user}")
    persona = make_persona(rng)
    character = Character(character=character_text(rng, persona))
    routines = make_routines(rng, make_habits(rng), config.open_trigger_rate)
    drafted = make_sessions(rng, persona, routines, n_sessions, config)
    return User(character, routines, [s for s, _ in drafted], [f for _, f in drafted])


def imperfection_shares(users: list[User]) -> dict[str, float]:
    """How often each imperfection occurred: shares of routine sessions, of spontaneous
    sessions, of all sessions, of routines."""
    facts = [f for u in users for f in u.facts]
    routine_facts = [f for u in users for s, f in zip(u.sessions, u.facts, strict=True)
                     if s.applied_routines]
    spontaneous = len(facts) - len(routine_facts)
    routines = [r for u in users for r in u.routines]

    def share(items: list[Any], name: str) -> float:
        return round(sum(getattr(f, name) for f in items) / max(1, len(items)), 3)

    return {
        "partial_routine_sessions": share(routine_facts, "partial"),
        "tweaked_routine_sessions": share(routine_facts, "tweaked"),
        "before_drift_routine_sessions": share(routine_facts, "before_drift"),
        "corrected_sessions": share(facts, "corrected"),
        "spontaneous_in_routine_context": round(
            sum(f.routine_context for f in facts) / max(1, spontaneous), 3),
        "open_trigger_routines": round(
            sum(any(v is None for _, v in r.triggers) for r in routines) / len(routines), 3),
    }


def synthesize(n_personas: int, n_sessions: int, seed: int, out_dir: str | Path,
               reference: str | Path | None = None,
               config: SynthConfig | None = None) -> SynthSummary:
    """Generate and write the corpus; `reference` (the real sample) is the distinct-n baseline,
    the recorded figures of the real sample when None; `config` the imperfections (default:
    `SynthConfig()`)."""
    if n_personas < 1 or n_sessions < 1:
        raise DataError("need at least one persona and one session per persona")
    config = config or SynthConfig()
    users = [generate_user(seed, user, n_sessions, config) for user in range(n_personas)]
    out_dir = Path(out_dir)
    characters = [u.character for u in users]
    routines = [u.routines for u in users]
    sessions = [u.sessions for u in users]
    write_jsonl_atomic(out_dir / "characters.jsonl",
                       (c.model_dump(mode="json") for c in characters))
    write_jsonl_atomic(out_dir / "routines.jsonl",
                       ({"routines": [r.model_dump(mode="json") for r in rs]} for rs in routines))
    write_jsonl_atomic(out_dir / "sessions.jsonl",
                       ({"sessions": [s.model_dump(mode="json") for s in ss]} for ss in sessions))
    real = REAL_SAMPLE_DISTINCT
    if reference is not None:
        real = distinct_profile(reference_texts(reference))
    summary = SynthSummary(
        out_dir=out_dir, n_personas=n_personas, n_sessions=n_sessions, seed=seed,
        stats=corpus_stats(routines, sessions), published=dict(PUBLISHED),
        distinct=distinct_profile(comparable_texts(sessions)), distinct_real=dict(real),
        real_source=str(reference) if reference is not None else "recorded",
        config=config, imperfections=imperfection_shares(users),
    )
    write_json_atomic(out_dir / STATS_FILE, summary.to_json())
    return summary
