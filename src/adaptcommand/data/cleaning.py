"""Session cleaning: normalize whitespace, drop sessions a model cannot learn from, keep order.

Roles are already checked by the schema when a file is read (anything but user/assistant is a
`DataError`), so cleaning only has to deal with well-formed but useless sessions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from adaptcommand.data.schema import CleanDialogue, Message

# Checked in this order; a session is counted under the first reason it meets.
DROP_REASONS = ("too_few_messages", "empty_text", "no_assistant_turn")

_SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class CleaningResult:
    """Kept dialogues (user order, then time order) and what was dropped, by reason."""

    kept: list[CleanDialogue]
    sessions_read: int
    dropped: dict[str, int]

    def counts(self) -> dict[str, object]:
        """The cleaning section of `validation_report.json`."""
        return {
            "sessions_read": self.sessions_read,
            "sessions_kept": len(self.kept),
            "sessions_dropped": sum(self.dropped.values()),
            "dropped_by_reason": dict(self.dropped),
        }


def normalize_text(text: str) -> str:
    """Strip the ends and collapse runs of spaces/tabs; newlines are kept as the author wrote."""
    return _SPACES.sub(" ", text).strip()


def drop_reason(messages: Sequence[Message]) -> str | None:
    """Why a (normalized) session is degenerate, or None when it is kept."""
    if len(messages) < 2:
        return "too_few_messages"
    if any(not message.text for message in messages):
        return "empty_text"
    if all(message.role != "assistant" for message in messages):
        return "no_assistant_turn"
    return None


def clean_dialogues(dialogues: Sequence[CleanDialogue]) -> CleaningResult:
    """Normalize every message, drop degenerate sessions and group the rest by persona.

    Personas keep the order in which they first appear and each persona's sessions keep their
    input order, which is taken as time order.
    """
    kept: list[CleanDialogue] = []
    dropped = dict.fromkeys(DROP_REASONS, 0)
    for dialogue in dialogues:
        messages = [
            Message(role=message.role, text=normalize_text(message.text))
            for message in dialogue.messages
        ]
        reason = drop_reason(messages)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(dialogue.model_copy(update={"messages": messages}))
    first_seen = {pid: rank for rank, pid in enumerate(dict.fromkeys(d.persona_id for d in kept))}
    kept.sort(key=lambda dialogue: first_seen[dialogue.persona_id])
    return CleaningResult(kept=kept, sessions_read=len(dialogues), dropped=dropped)
