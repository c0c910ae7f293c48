"""The one place a dialogue turns into a model prompt, shared by training and evaluation so the
model is always trained on exactly the prompt format it is evaluated on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from adaptcommand.config import first_error
from adaptcommand.data.schema import Message
from adaptcommand.errors import AdaptCommandError, DataError

if TYPE_CHECKING:  # transformers takes seconds to import; only its type is needed here
    from transformers import PreTrainedTokenizerBase

DEFAULT_SYSTEM_PROMPT = (
    "You are a smart-home assistant. You control these devices: "
    "TV (volume 0-100, brightness 0-100, input source HDMI1, HDMI2, AV, Netflix or YouTube); "
    "AC (temperature 16-30 degrees, mode cool, heat or auto, fan speed 0-3); "
    "lights (brightness 0-100, color warm, cool or neutral, mode static or dynamic); "
    "speaker (volume 0-100, equalizer bass boost, balanced or treble boost); "
    "security (armed or disarmed, alarm volume 0-100). "
    "Reply briefly. When you change settings, state each setting you apply with its explicit "
    "value, for example: 'Setting the AC to 22 degrees in cool mode with fan speed 2.'"
)


def build_chat(
    messages: Sequence[Message | Mapping[str, Any]],
    system_prompt: str | None,
    max_context_messages: int = 5,
) -> list[dict[str, str]]:
    """Chat messages for predicting the turn after `messages` (the history before it).

    Keeps the last `max_context_messages` user/assistant pairs, i.e. at most twice that many
    messages, then drops a leading assistant message so the context opens with the user.
    The system message is always present: `None` (or "") becomes an empty one, because some
    chat templates (SmolLM2, Qwen2.5) otherwise inject their own default persona.
    """
    if max_context_messages < 0:
        raise AdaptCommandError(f"max_context_messages must be >= 0, got {max_context_messages}")
    window = [_as_message(m, i) for i, m in enumerate(messages)]
    window = window[-2 * max_context_messages :] if max_context_messages else []
    if window and window[0].role == "assistant":
        window = window[1:]
    chat = [{"role": "system", "content": system_prompt or ""}]
    return chat + [{"role": m.role, "content": m.text} for m in window]


def render_prompt(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Message | Mapping[str, Any]],
    system_prompt: str | None,
    max_context_messages: int = 5,
) -> str:
    """The prompt text, ending with the template's assistant header so the model replies."""
    if not getattr(tokenizer, "chat_template", None):
        raise AdaptCommandError("the tokenizer has no chat template; use an instruct/chat model")
    chat = build_chat(messages, system_prompt, max_context_messages)
    return tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)


def _as_message(message: Message | Mapping[str, Any], index: int) -> Message:
    if isinstance(message, Message):
        return message
    try:
        return Message.model_validate(message)
    except ValidationError as exc:
        field, reason = first_error(exc)
        raise DataError(reason, field=f"messages.{index}.{field}") from None
