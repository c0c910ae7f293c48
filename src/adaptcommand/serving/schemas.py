"""Request and response bodies: the OpenAI chat-completions subset plus our extensions
(`identify_user` and the session context in `metadata` in, `adapter`, `actions` and
`identified_user` out)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from adaptcommand.config import StrictModel

ActionValue = int | bool | str
ActionsOut = dict[str, dict[str, ActionValue]]


class ChatMessage(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(StrictModel):
    """Unknown fields are refused (422) so a misspelt knob never silently does nothing."""

    model: str | None = Field(None, description="As vLLM: an adapter name (persona id or "
                              "unified) serves with that adapter; `base` the base model; the "
                              "base model's name or absent: `user` decides.")
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
    metadata: dict[str, str] | None = Field(
        None, max_length=16, description="OpenAI's metadata tags. Keys named like a session's "
        "context (time_of_day, day_of_week, sun_phase, weather, outdoor_temp) give the "
        "session's context to the profile line; other keys are ignored. Default context: the "
        "server clock's time of day and day of week.")


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
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "adaptcommand"
    kind: Literal["base", "unified", "user"]
    root: str | None = Field(None, description="The base model's name (base card only).")
    parent: str | None = Field(None, description="An adapter's base model id, as vLLM has it.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: int
    id: str | None = Field(None, description="500s only: the id of the server log entry.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class LoadLoraRequest(StrictModel):
    """vLLM's runtime adapter loading body; `lora_path` must lie under the adapters directory
    (relative paths are taken from there)."""

    lora_name: str
    lora_path: str


class UnloadLoraRequest(StrictModel):
    lora_name: str
    lora_int_id: int | None = Field(None, description="Accepted for vLLM compatibility.")


class LoraStatus(BaseModel):
    status: Literal["loaded", "unloaded"]
    lora_name: str


class Health(BaseModel):
    status: Literal["ok", "not ok"]


class UserRoutines(BaseModel):
    """A user's mined routines in the EdgeWisePersona layout (triggers + actions)."""

    persona_id: str
    routines: list[dict[str, Any]]
