"""Whitespace normalization and the drop rules for degenerate sessions."""

from __future__ import annotations

import pytest

from adaptcommand.data.cleaning import clean_dialogues, drop_reason, normalize_text
from adaptcommand.data.schema import CleanDialogue, Message


def _dialogue(persona: str, *turns: tuple[str, str]) -> CleanDialogue:
    return CleanDialogue(
        persona_id=persona, messages=[Message(role=role, text=text) for role, text in turns]
    )


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  set  the\t\tlights ", "set the lights"),
        ("line one \nline  two", "line one \nline two"),
        (" \t ", ""),
        ("already clean", "already clean"),
    ],
)
def test_normalize_text(raw: str, clean: str) -> None:
    assert normalize_text(raw) == clean


@pytest.mark.parametrize(
    ("turns", "reason"),
    [
        ([("user", "hi")], "too_few_messages"),
        ([], "too_few_messages"),
        ([("user", "hi"), ("assistant", "")], "empty_text"),
        ([("user", "hi"), ("user", "anyone?")], "no_assistant_turn"),
        ([("assistant", "hello"), ("user", "hi")], None),
    ],
)
def test_drop_reason(turns: list[tuple[str, str]], reason: str | None) -> None:
    assert drop_reason([Message(role=role, text=text) for role, text in turns]) == reason


def test_clean_counts_drops_normalizes_and_groups_by_persona() -> None:
    ok = (("user", "  lights\t on "), ("assistant", "Done."))
    result = clean_dialogues([
        _dialogue("b", *ok),
        _dialogue("a", ("user", "hi"), ("assistant", "   ")),
        _dialogue("a", *ok),
        _dialogue("b", ("user", "only me")),
        _dialogue("b", ("user", "x"), ("assistant", "y")),
    ])
    assert [(d.persona_id, d.messages[1].text) for d in result.kept] == [
        ("b", "Done."), ("b", "y"), ("a", "Done."),
    ]
    assert result.kept[0].messages[0].text == "lights on"
    assert result.counts() == {
        "sessions_read": 5,
        "sessions_kept": 3,
        "sessions_dropped": 2,
        "dropped_by_reason": {"too_few_messages": 1, "empty_text": 1, "no_assistant_turn": 0},
    }
