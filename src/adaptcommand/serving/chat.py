"""From an OpenAI-style chat request to our prompt and decoding settings, and from the reply
text to the response: the extracted device actions, token usage and SSE chunks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable

from adaptcommand.data.schema import Actions, actions_dict
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.models.generation import GenerationSettings
from adaptcommand.serving.batch_runner import Reply
from adaptcommand.serving.config import ServeSettings
from adaptcommand.serving.errors import BadRequestError
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
from adaptcommand.serving.streaming import StreamChannel


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


async def stream_events(
    channel: StreamChannel,
    reply: asyncio.Future[Reply],
    *,
    model: str,
    adapter: str,
    max_tokens: int,
    identified: Identification | None,
    on_error: Callable[[BaseException], tuple[str, str]],
) -> AsyncIterator[str]:
    """OpenAI stream events as the reply is decoded: the role, each piece of text as soon as
    the worker decodes it, then a final chunk with finish_reason, usage, actions and who
    answered, then `[DONE]`. A failure mid-reply ends the stream with an error event carrying
    only an error id. Leaving (the client disconnected) stops the generation."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model,
            "adapter": adapter}
    try:
        yield _event(ChatChunk(**head, choices=[ChunkChoice(delta=Delta(role="assistant",
                                                                        content=""))]))
        async for piece in channel.pieces():
            yield _event(ChatChunk(**head, choices=[ChunkChoice(delta=Delta(content=piece))]))
        try:
            done = await reply
        except Exception as exc:
            error_id, message = on_error(exc)
            error = {"message": message, "type": "server_error",
                     "code": 500, "id": error_id}
            yield f"data: {json.dumps({'error': error})}\n\n"
            return
        final = completion(done, max_tokens=max_tokens, model=model, adapter=adapter,
                           identified=identified)
        yield _event(ChatChunk(**head, choices=[ChunkChoice(
            delta=Delta(), finish_reason=final.choices[0].finish_reason)],
            actions=final.actions, identified_user=identified, usage=final.usage))
        yield "data: [DONE]\n\n"
    finally:
        channel.cancelled.set()  # a no-op after the end; a disconnect stops the decoding


def _event(chunk: ChatChunk) -> str:
    return f"data: {chunk.model_dump_json()}\n\n"
