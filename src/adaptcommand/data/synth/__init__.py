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

from adaptcommand.data.schema import Character, Routine, Session
from adaptcommand.data.synth.personas import character_text, make_persona
from adaptcommand.data.synth.routines import make_habits, make_routines
from adaptcommand.data.synth.sessions import make_sessions
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

__all__ = ["STATS_FILE", "SynthSummary", "generate_user", "synthesize"]

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

    def to_json(self) -> dict[str, object]:
        return {
            "personas": self.n_personas, "sessions_per_user": self.n_sessions, "seed": self.seed,
            "generated": self.stats, "published": self.published,
            "distinct": {"generated": self.distinct, "real_sample": self.distinct_real,
                         "real_source": self.real_source},
        }


def generate_user(seed: int, user: int, n_sessions: int) -> tuple[Character, list[Routine],
                                                                    list[Session]]:
    """One user's character, routines and sessions; depends only on (seed, user, n_sessions)."""
    rng = random.Random(f"adaptcommand-synth:{seed}:{user}")
    persona = make_persona(rng)
    character = Character(character=character_text(rng, persona))
    routines = make_routines(rng, make_habits(rng))
    return character, routines, make_sessions(rng, persona, routines, n_sessions)


def synthesize(n_personas: int, n_sessions: int, seed: int, out_dir: str | Path,
               reference: str | Path | None = None) -> SynthSummary:
    """Generate and write the corpus; `reference` (the real sample) is the distinct-n baseline,
    the recorded figures of the real sample when None."""
    if n_personas < 1 or n_sessions < 1:
        raise DataError("need at least one persona and one session per persona")
    users = [generate_user(seed, user, n_sessions) for user in range(n_personas)]
    out_dir = Path(out_dir)
    characters, routines, sessions = (list(column) for column in zip(*users, strict=True))
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
    )
    write_json_atomic(out_dir / STATS_FILE, summary.to_json())
    return summary
