"""Personal values: the settings of a reference reply that only knowledge of the user can give.

Action F1 rewards a reply that echoes "AC to 22" after the user said "AC to 22". A turn's
*personal values* are the (device, parameter, value) triples of its reference reply that no
message of the prompt's context states (the last `max_context_messages` pairs, windowed exactly
as `models.prompting.build_chat` windows the prompt). A context message *states* a triple when
the action extractor finds it in that message, offers, questions and state reports included
("Shall I set the AC to 22?" makes 22 known). The profile line or retrieved memories of an arm
are not context here: the personal values of a turn are the same for every arm, so arms pair.

Per arm (micro over turns):
- recall = predicted personal triples / personal triples;
- precision = predicted personal triples / predicted triples the context does not state (the
  reply's own guesses about the user; echoing the context is neither right nor wrong here);
- turn share = share of turns with at least one personal value.
The same metrics are split by the user's last message: `implicit` when it appeals to the user's
habits instead of stating what to set (`is_implicit_request`), `explicit` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from adaptcommand.data.schema import Message
from adaptcommand.evaluation.action_metrics import Counts
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.evaluation.turns import Turn
from adaptcommand.models.prompting import build_chat

Triple = tuple[str, str, object]
Key = tuple[str, int, int]
GROUPS = ("explicit", "implicit")
# Headline names (flat, like every metric of results.json); each also exists per group with
# a `_explicit` / `_implicit` suffix.
PERSONAL_METRICS = ("personal_recall", "personal_precision", "personal_f1", "personal_turn_share")

# Appeals to the user's habits: "my usual", "the usual", "as always", "the way I like it",
# "you know how I like it", "how I normally have it", "my go-to", "like last time",
# "my evening routine", "my rainy-evening setup". Matched case-insensitively anywhere in the
# message; a request that also states values ("the usual, but the AC at 22") is still implicit
# for the values it does not state.
IMPLICIT_CUES = re.compile(
    r"\busual(?:ly)?\b|\bnormal(?:ly)?\b|\b(?:as|like|same\s+as)\s+always\b|\bas\s+ever\b"
    r"|\b(?:the\s+way|how|as)\s+(?:I|we)\s+(?:\w+\s+)?(?:like|prefer|want|have|enjoy)\b"
    r"|\byou\s+know\s+(?:how|what|the\s+way)\b"
    r"|\bmy\s+(?:regular|standard|favou?rite|go-to|typical|preferred|default)\b"
    r"|\b(?:like|same\s+as)\s+(?:last\s+time|before|yesterday|every\s+\w+)\b"
    r"|\bmy\s+(?:[\w-]+\s+){0,2}(?:routine|setup|set-up|preferences)\b",
    re.IGNORECASE,
)


def is_implicit_request(text: str) -> bool:
    """Whether a user message appeals to the user's habits (see IMPLICIT_CUES)."""
    return bool(IMPLICIT_CUES.search(text.replace("’", "'")))


def triples(actions: Mapping[str, Mapping[str, object]]) -> set[Triple]:
    return {(d, p, v) for d, settings in actions.items() for p, v in settings.items()}


def stated_triples(texts: Iterable[str]) -> set[Triple]:
    """Every triple any of `texts` states, committed to or not."""
    return {t for text in texts for t in _stated(text)}


@lru_cache(maxsize=4096)
def _stated(text: str) -> frozenset[Triple]:
    """Cached: consecutive turns of a session share most of their context window."""
    return frozenset(triples(extract_actions(text, commitments_only=False)))


@dataclass(frozen=True)
class PersonalTurn:
    """What one evaluated turn asks of the user model, independent of the arm."""

    personal: frozenset[Triple]  # reference triples no context message states
    stated: frozenset[Triple]  # triples the context window states
    implicit: bool  # the user's last message appeals to habits

    @property
    def group(self) -> str:
        return "implicit" if self.implicit else "explicit"


def personal_turn(context: Sequence[Message], reference: str,
                  max_context_messages: int) -> PersonalTurn:
    """The personal values of the reply `reference` after `context` (the whole history before
    it; only the prompt's window counts as stated)."""
    window = build_chat(context, None, max_context_messages)[1:]
    stated = stated_triples(m["content"] for m in window)
    last_user = next((m["content"] for m in reversed(window) if m["role"] == "user"), "")
    reference_triples = triples(extract_actions(reference))
    return PersonalTurn(frozenset(reference_triples - stated), frozenset(stated),
                        is_implicit_request(last_user))


def personal_turns(turns: Iterable[Turn], max_context_messages: int) -> dict[Key, PersonalTurn]:
    """`personal_turn` of every evaluation turn, by turn key."""
    return {turn.key: personal_turn(turn.context, turn.reference, max_context_messages)
            for turn in turns}


@dataclass
class PersonalScores:
    """Addable counts of one or more turns: `counts.tp` predicted personal values, `fp` guesses
    beyond the context that are not personal values, `fn` personal values missed."""

    turns: int = 0
    with_personal: int = 0
    counts: Counts = field(default_factory=Counts)

    def __add__(self, other: PersonalScores) -> PersonalScores:
        return PersonalScores(self.turns + other.turns, self.with_personal + other.with_personal,
                              self.counts + other.counts)

    def metrics(self, suffix: str = "") -> dict[str, float | None]:
        share = self.with_personal / self.turns if self.turns else None
        return {f"personal_recall{suffix}": self.counts.recall,
                f"personal_precision{suffix}": self.counts.precision,
                f"personal_f1{suffix}": self.counts.f1,
                f"personal_turn_share{suffix}": share}


def score_personal(predicted: Mapping[str, Mapping[str, object]],
                   turn: PersonalTurn) -> PersonalScores:
    """One turn's counts for the reply's extracted actions `predicted`."""
    guesses = triples(predicted) - turn.stated
    return PersonalScores(1, int(bool(turn.personal)), Counts.of_sets(guesses, set(turn.personal)))


def personal_metrics(scored: Iterable[tuple[PersonalTurn, PersonalScores]]
                     ) -> dict[str, float | None]:
    """Flat metrics over turns, overall and per group, plus the share of implicit turns."""
    total = PersonalScores()
    by_group = {group: PersonalScores() for group in GROUPS}
    for turn, scores in scored:
        total += scores
        by_group[turn.group] += scores
    flat = total.metrics()
    for group, scores in by_group.items():
        flat.update(scores.metrics(f"_{group}"))
    flat["implicit_turn_share"] = by_group["implicit"].turns / total.turns if total.turns else None
    return flat
