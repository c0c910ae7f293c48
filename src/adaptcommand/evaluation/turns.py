"""The unit of evaluation: one assistant turn with its ground-truth context."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from adaptcommand.data.schema import CleanDialogue, Message
from adaptcommand.errors import AdaptCommandError


@dataclass(frozen=True)
class Turn:
    persona_id: str
    session_id: int
    turn_index: int  # index of the assistant message inside its session
    context: tuple[Message, ...]  # every message before it; the prompt keeps the last N pairs
    reference: str

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.persona_id, self.session_id, self.turn_index)


def session_id_of(dialogue: CleanDialogue, position: int) -> int:
    """A stable session id: the file's own id when it has one, else its position for the persona."""
    for candidate in (dialogue.session_id, dialogue.dialogue_idx):
        if candidate is not None:
            return candidate
    return position


def iter_turns(dialogues: Sequence[CleanDialogue], skip_assistant_turns: int = 2) -> list[Turn]:
    """Every assistant turn after the first `skip_assistant_turns` of each session, with context.

    Early turns are skipped because they carry little user-specific context to learn from; a
    session's opening message, if it is the assistant's, has no context and is never a turn.
    """
    turns: list[Turn] = []
    for position, dialogue in enumerate(dialogues):
        session_id = session_id_of(dialogue, position)
        assistant_turns = [i for i, m in enumerate(dialogue.messages) if m.role == "assistant"]
        for index in assistant_turns[skip_assistant_turns:]:
            if index == 0:
                continue
            turns.append(
                Turn(
                    persona_id=dialogue.persona_id,
                    session_id=session_id,
                    turn_index=index,
                    context=tuple(dialogue.messages[:index]),
                    reference=dialogue.messages[index].text,
                )
            )
    return turns


def group_by_persona(dialogues: Iterable[CleanDialogue]) -> dict[str, list[CleanDialogue]]:
    """persona_id -> dialogues in file order, personas in order of first appearance."""
    grouped: dict[str, list[CleanDialogue]] = {}
    for dialogue in dialogues:
        grouped.setdefault(dialogue.persona_id, []).append(dialogue)
    return grouped


def select_turns(
    by_persona: Mapping[str, Sequence[CleanDialogue]],
    skip_assistant_turns: int,
    personas: Sequence[str] | None = None,
    max_examples: int | None = None,
) -> list[Turn]:
    """The turns of the chosen personas (all by default), at most `max_examples` of them."""
    if personas:
        unknown = sorted(set(personas) - set(by_persona))
        if unknown:
            raise AdaptCommandError(f"unknown persona(s): {', '.join(unknown)}")
        by_persona = {pid: by_persona[pid] for pid in personas}
    turns = [
        turn
        for dialogues in by_persona.values()
        for turn in iter_turns(dialogues, skip_assistant_turns)
    ]
    return turns[:max_examples] if max_examples is not None else turns
