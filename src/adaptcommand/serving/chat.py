"""From an OpenAI-style chat request to our prompt and decoding settings, and from the reply
text to the response: the extracted device actions, token usage and SSE chunks."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

from adaptcommand.data.schema import Actions, actions_dict
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.models.generation import GenerationSettings
from adaptcommand.serving.config import ServeSettings
from adaptcommand.serving.engine import Reply
from adaptcommand.serving.schemas import (
    ActionsOut,
    AssistantMessage,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    Identification,
    Usage,
)

_WORD = re.compile(r"\s*\S+")  # stream chunks: a word with the whitespace before it


class BadRequestError(AdaptCommandError):
    """A request the server understands but will not serve as asked (400)."""


def conversation(request: ChatRequest, default_system: str) -> tuple[str, list[dict[str, str]]]:
    """(system prompt, user/assistant turns). System messages, wherever they are, replace the
    server's default; the last turn must be the user's, since that is what gets answered."""
    systems = [m.content for m in request.messages if m.role == "system"]
    turns = [{"role": m.role, "text": m.content} for m in request.messages if m.role != "system"]
    if not turns or turns[-1]["role"] != "user":
        raise BadRequestError("messages must end with a user message")
    return ("\n\n".join(systems) if systems else default_system), turns


def decoding(request: ChatRequest, settings: ServeSettings) -> GenerationSettings:
    """Greedy unless a positive temperature is given. A max_tokens above the server's limit is
    refused (400), not clamped, so a client never gets a silently shorter reply."""
    max_tokens = request.max_tokens or settings.default_max_tokens
    if max_tokens > settings.max_tokens_limit:
        raise BadRequestError(
            f"max_tokens {max_tokens} exceeds this server's limit of {settings.max_tokens_limit}"
        )
    sampling = bool(request.temperature)
    knobs: dict[str, object] = {"max_new_tokens": max_tokens, "do_sample": sampling,
                                "seed": settings.seed if request.seed is None else request.seed}
    if sampling:
        knobs["temperature"] = request.temperature
        knobs["top_p"] = request.top_p or 1.0
    return GenerationSettings.model_validate(knobs)


def reply_actions(text: str) -> ActionsOut:
    """The device settings a reply commits to, validated against the schema."""
    return actions_dict(Actions.model_validate(extract_actions(text)))


def completion(
    reply: Reply, *, max_tokens: int, model: str, adapter: str, identified: Identification | None
) -> ChatResponse:
    """The response body; finish_reason is "length" when the reply used all of max_tokens."""
    return ChatResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=AssistantMessage(content=reply.text),
                        finish_reason="length" if reply.completion_tokens >= max_tokens
                        else "stop")],
        usage=Usage(prompt_tokens=reply.prompt_tokens,
                    completion_tokens=reply.completion_tokens,
                    total_tokens=reply.prompt_tokens + reply.completion_tokens),
        adapter=adapter,
        actions=reply_actions(reply.text),
        identified_user=identified,
    )


def sse_events(response: ChatResponse) -> Iterator[str]:
    """A finished response as OpenAI stream events: the role, the text word by word, then a
    final chunk with finish_reason, actions and who answered, then `[DONE]`."""
    choice = response.choices[0]
    head = {"id": response.id, "created": response.created, "model": response.model,
            "adapter": response.adapter}
    deltas = [Delta(role="assistant", content="")]
    deltas += [Delta(content=word) for word in _WORD.findall(choice.message.content)]
    for delta in deltas:
        yield _event(ChatChunk(**head, choices=[ChunkChoice(delta=delta)]))
    yield _event(ChatChunk(**head, choices=[ChunkChoice(delta=Delta(),
                                                        finish_reason=choice.finish_reason)],
                           actions=response.actions, identified_user=response.identified_user))
    yield "data: [DONE]\n\n"


def _event(chunk: ChatChunk) -> str:
    return f"data: {chunk.model_dump_json()}\n\n"
