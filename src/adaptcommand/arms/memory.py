"""Retrieval memory: personalization without training, by showing the model the user's own past
exchanges that resemble the current request.

The memory of a persona is its train-split (user message -> assistant reply) pairs and nothing
else, so evaluated turns can never see themselves or another user. Each index is embedded once
(MiniLM, unit vectors) on first use; a search is one matrix product, and ties keep time order,
so the same inputs always give the same prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from adaptcommand.data.schema import CleanDialogue
from adaptcommand.evaluation.embeddings import encode
from adaptcommand.evaluation.predictor import SystemPrompts
from adaptcommand.evaluation.turns import Turn

MEMORY_HEADER = "Earlier exchanges with this user:"


@dataclass(frozen=True)
class Exchange:
    """A user message and the assistant reply that followed it."""

    user: str
    assistant: str


def train_exchanges(dialogues: Sequence[CleanDialogue]) -> list[Exchange]:
    """Every user message directly answered by the assistant, in time order; exact repeats are
    kept once so that k retrieved exchanges show k different things."""
    seen: dict[Exchange, None] = {}
    for dialogue in dialogues:
        for message, reply in zip(dialogue.messages, dialogue.messages[1:], strict=False):
            if message.role == "user" and reply.role == "assistant":
                seen.setdefault(Exchange(message.text, reply.text))
    return list(seen)


@dataclass(frozen=True)
class _Index:
    exchanges: list[Exchange]
    vectors: np.ndarray  # (len(exchanges), dim) unit rows


class RetrievalMemory:
    """Per-persona indexes over train exchanges, each built on first use and kept."""

    def __init__(
        self, train: Mapping[str, Sequence[CleanDialogue]], k: int, batch_size: int = 64
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.train = train
        self.k = k
        self.batch_size = batch_size
        self._indexes: dict[str, _Index] = {}

    def _index(self, persona_id: str) -> _Index:
        if persona_id not in self._indexes:
            exchanges = train_exchanges(self.train.get(persona_id, []))
            users = [exchange.user for exchange in exchanges]
            vectors = encode(users, self.batch_size) if users else np.zeros((0, 0), np.float32)
            self._indexes[persona_id] = _Index(exchanges, vectors)
        return self._indexes[persona_id]

    def search(self, persona_id: str, queries: Sequence[str]) -> list[list[Exchange]]:
        """The k exchanges of `persona_id` whose user message is most similar to each query,
        most similar first."""
        index = self._index(persona_id)
        if not queries:
            return []
        if not index.exchanges:
            return [[] for _ in queries]
        scores = encode(list(queries), self.batch_size) @ index.vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        return [[index.exchanges[i] for i in row] for row in order]


def memory_block(exchanges: Sequence[Exchange]) -> str:
    """The retrieved exchanges as prompt text."""
    lines = [MEMORY_HEADER]
    for exchange in exchanges:
        lines += [f"User: {exchange.user}", f"Assistant: {exchange.assistant}"]
    return "\n".join(lines)


def with_memory(system_prompt: str | None, exchanges: Sequence[Exchange]) -> str | None:
    """The system prompt followed by the memory block (unchanged when nothing was retrieved)."""
    if not exchanges:
        return system_prompt
    block = memory_block(exchanges)
    return f"{system_prompt}\n\n{block}" if system_prompt else block


def last_user_message(turn: Turn) -> str | None:
    """The query of a turn: what the user said last before the reply to predict."""
    return next((m.text for m in reversed(turn.context) if m.role == "user"), None)


def memory_system_prompts(memory: RetrievalMemory, system_prompt: str | None) -> SystemPrompts:
    """Per-turn system prompts carrying each turn's retrieved exchanges; queries of one persona
    are embedded together."""

    def prompts(turns: Sequence[Turn]) -> list[str | None]:
        result = [system_prompt] * len(turns)
        by_persona: dict[str, list[tuple[int, str]]] = {}
        for position, turn in enumerate(turns):
            query = last_user_message(turn)
            if query is not None:
                by_persona.setdefault(turn.persona_id, []).append((position, query))
        for persona_id, pending in by_persona.items():
            found = memory.search(persona_id, [query for _, query in pending])
            for (position, _), exchanges in zip(pending, found, strict=True):
                result[position] = with_memory(system_prompt, exchanges)
        return result

    return prompts
