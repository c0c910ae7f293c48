"""Statistics of a generated corpus, next to the published EdgeWisePersona figures, and lexical
diversity (distinct-n) measured on samples shaped like the real one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from adaptcommand.config import first_error
from adaptcommand.data.schema import CleanDialogue, Routine, Session
from adaptcommand.errors import DataError
from adaptcommand.fileio import read_jsonl

PUBLISHED: dict[str, float] = {
    "routines_per_user": 3.98,
    "triggers_per_routine": 4.98,
    "devices_per_routine": 3.11,
    "actions_per_routine": 8.24,
    "messages_per_session": 9.88,
    "routine_driven_share": 0.75,
}
# Measured on edgewisepersona/cold_start_dev.jsonl (100 users x first 5 messages): the figures
# shown when no reference file is given.
REAL_SAMPLE_DISTINCT: dict[str, float] = {"distinct_1": 0.0846, "distinct_2": 0.2823,
                                          "distinct_3": 0.4451, "tokens_per_message": 16.77}
SAMPLE_USERS = 100
SAMPLE_MESSAGES = 5

_TOKEN = re.compile(r"[\w']+")
_VALUE = re.compile(
    r"\d|\b(heat|cool|auto) mode\b|\bmode to (heat|cool|auto)\b|\bhdmi|\bnetflix\b|\byoutube\b"
    r"|\bav\b|bass boost|treble boost|\bbalanced\b|\bdynamic\b|\bstatic\b"
    r"|\b(warm|cool|neutral) (white|colou?r|tone|light)\b|\bcolou?r to\b|\b(dis)?arm(ed)?\b",
    re.IGNORECASE,
)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (apostrophes kept: "it's" is one word)."""
    return _TOKEN.findall(text.lower())


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Unique n-grams / all n-grams, n-grams taken within each text."""
    grams = [tuple(t[i:i + n]) for t in map(tokens, texts) for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_profile(texts: Sequence[str]) -> dict[str, float]:
    profile = {f"distinct_{n}": round(distinct_n(texts, n), 4) for n in (1, 2, 3)}
    profile["tokens_per_message"] = round(sum(len(tokens(t)) for t in texts) / len(texts), 2)
    return profile


def states_values(text: str) -> bool:
    """Whether a message names a device setting value (a number or a schema value word)."""
    return _VALUE.search(text) is not None


def comparable_texts(sessions_per_user: Sequence[Sequence[Session]]) -> list[str]:
    """The real sample's shape: the first 5 messages of the first test session (80% into the
    history) of each of the first 100 users."""
    texts = []
    for sessions in sessions_per_user[:SAMPLE_USERS]:
        session = sessions[min(int(0.8 * len(sessions)), len(sessions) - 1)]
        texts += [m.text for m in session.messages[:SAMPLE_MESSAGES]]
    return texts


def reference_texts(path: str | Path) -> list[str]:
    """The first 5 messages of each dialogue of a cleaned-format file such as the real sample."""
    texts = []
    for line, obj in read_jsonl(path):
        try:
            dialogue = CleanDialogue.model_validate(obj)
        except ValidationError as exc:
            field, message = first_error(exc)
            raise DataError(message, path=path, line=line, field=field) from None
        texts += [m.text for m in dialogue.messages[:SAMPLE_MESSAGES]]
    if not texts:
        raise DataError("no messages in reference file", path=path)
    return texts


def corpus_stats(routines_per_user: Sequence[Sequence[Routine]],
                 sessions_per_user: Sequence[Sequence[Session]]) -> dict[str, float]:
    """The published statistics measured on a corpus, plus the share of routine sessions whose
    user turns state no value."""
    routines = [r for rs in routines_per_user for r in rs]
    sessions = [s for ss in sessions_per_user for s in ss]
    driven = [s for s in sessions if s.applied_routines]
    devices = [d for r in routines for _, d in r.actions if d is not None]
    value_free = [s for s in driven
                  if not any(states_values(m.text) for m in s.messages if m.role == "user")]
    return {
        "routines_per_user": round(len(routines) / len(routines_per_user), 3),
        "triggers_per_routine": round(
            sum(v is not None for r in routines for _, v in r.triggers) / len(routines), 3),
        "devices_per_routine": round(len(devices) / len(routines), 3),
        "actions_per_routine": round(
            sum(v is not None for d in devices for _, v in d) / len(routines), 3),
        "messages_per_session": round(sum(len(s.messages) for s in sessions) / len(sessions), 3),
        "routine_driven_share": round(len(driven) / len(sessions), 3),
        "value_free_routine_share": round(len(value_free) / max(1, len(driven)), 3),
    }
