"""Request and response bodies: the OpenAI chat-completions subset plus our extensions
(`identify_user` in, `adapter`, `actions` and `identified_user` out)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from adaptcommand.config import StrictModel

ActionValue = int | bool | str
ActionsOut = dict[str, dict[str, ActionValue]]


class ChatMessage(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(StrictModel):
    """Unknown fields are refused (422) so a misspelt knob never silently does nothing."""

    model: str | None = Field(None, description="Accepted for compatibility; echoed only.")
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2, description="Absent or 0: greedy.")
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    user: str | None = Field(None, description="Persona id: selects that user's adapter.")
    identify_user: bool = Field(
        False, description="When `user` is absent, pick the persona from the user messages."
    )


class Candidate(BaseModel):
    persona_id: str
    score: float


class Identification(BaseModel):
    """The identified persona and the runners-up, best first (cosine to train centroids)."""

    persona_id: str
    score: float
    candidates: list[Candidate]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    adapter: str = Field(description="base, unified or the persona id whose adapter replied.")
    actions: ActionsOut = Field(description="Device settings the reply commits to.")
    identified_user: Identification | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None


class ChatChunk(BaseModel):
    """One SSE event; the last one carries finish_reason and the reply's actions."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    adapter: str
    actions: ActionsOut | None = None
    identified_user: Identification | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "adaptcommand"
    kind: Literal["base", "unified", "user"]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: int


class ErrorResponse(BaseModel):
    error: ErrorDetail
