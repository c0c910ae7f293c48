"""The one place a dialogue turns into a model prompt, shared by training and evaluation so the
model is always trained on exactly the prompt format it is evaluated on.

A prompt may carry one extra text about the user (`ProfileText`): the session's context as a
sentence and/or the user's mined routine for it as one profile line. Where it goes is a
setting: in the first user message of the window (default; the placement a 135M model learned
to use in the issue-15 measurement, value recall 0.98 against 0.006 in the system prompt) or
appended to the system prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from adaptcommand.config import StrictModel, first_error
from adaptcommand.data.schema import DEVICES, TRIGGER_VALUES, Message, Triggers
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


ProfilePlacement = Literal["user", "system"]
PROFILE_HEADER = "User profile"
SUN_PHASE_WORDS = {"before_sunrise": "before sunrise", "daylight": "in daylight",
                   "after_sunset": "after sunset"}
SUN_PHASE_ALONE = {**SUN_PHASE_WORDS, "daylight": "daytime"}


class ProfileOptions(StrictModel):
    """The profile arms' prompt options, shared by training and evaluation configs."""

    profile: Literal["none", "line"] = Field(
        "none", description="line: the prompt carries one line with the user's routine mined "
        "from the train split for the session's context, plus their usual settings "
        "(models.profile_prompt); training writes each persona's profile to "
        "OUT/<persona_id>/profile.json and evaluation reads it (or --profiles FILE). none: no "
        "profile.")
    profile_placement: ProfilePlacement = Field(
        "user", description="Where the profile/context text goes: user (before the first user "
        "message of the window) or system (after the system prompt).")
    context_line: bool = Field(False, description="State the session's context (time of day, "
                               "day of week, sun phase, weather, outdoor temperature) as one "
                               "sentence, placed like the profile.")

    @model_serializer(mode="wrap")
    def _omit_unused_profile_options(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Options at their defaults are left out of dumps, so configs, hashes and run
        identities of runs made before these options existed are unchanged (they resume)."""
        data = handler(self)
        for name, field in ProfileOptions.model_fields.items():
            if getattr(self, name) == field.default:
                data.pop(name, None)
        return data


@dataclass(frozen=True)
class ProfileText:
    """What a prompt says about the user beyond the dialogue, and where it goes."""

    text: str
    placement: ProfilePlacement = "user"


def trigger_sentence(triggers: Triggers) -> str:
    """The triggers as one sentence, e.g. "It's a rainy, cold weekday evening after sunset.";
    unset fields are left out, and no trigger at all gives ""."""
    adjectives = ", ".join(v for v in (triggers.weather, triggers.outdoor_temp) if v)
    nouns = [v for v in (triggers.day_of_week, triggers.time_of_day) if v]
    head = " ".join([adjectives, *(nouns or ["day"])]) if adjectives else " ".join(nouns)
    if not head:
        return f"It's {SUN_PHASE_ALONE[triggers.sun_phase]}." if triggers.sun_phase else ""
    article = "" if head == triggers.time_of_day else ("an " if head[0] in "aeiou" else "a ")
    sun = f" {SUN_PHASE_WORDS[triggers.sun_phase]}" if triggers.sun_phase else ""
    return f"It's {article}{head}{sun}."


def settings_phrase(actions: Mapping[str, Mapping[str, Any]]) -> str:
    """Device settings in schema order, e.g. "ac temperature 22, mode heat; lights brightness
    50, color warm"; a boolean reads as the parameter's state ("security armed")."""
    parts = []
    for device in DEVICES:
        settings = actions.get(device) or {}
        values = [_setting(param, value) for param, value in settings.items()
                  if value is not None]
        if values:
            parts.append(f"{device} " + ", ".join(values))
    return "; ".join(parts)


def _setting(param: str, value: Any) -> str:
    if isinstance(value, bool):
        return param if value else f"dis{param}" if param == "armed" else f"not {param}"
    return f"{param.replace('_', ' ')} {value}"


def profile_line(triggers: Mapping[str, str | None], actions: Mapping[str, Mapping[str, Any]],
                 common_settings: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """One line with the user's routine for this context and their usual other settings, e.g.
    "User profile (evening, weekday): ac temperature 22, mode heat; lights brightness 50.
    Usually: speaker volume 30." None when there is nothing to say. Common settings of a device
    the routine sets are left out (the routine decides it in this context)."""
    when = [str(triggers[f]).replace("_", " ") for f in TRIGGER_VALUES if triggers.get(f)]
    header = f"{PROFILE_HEADER} ({', '.join(when)})" if when else PROFILE_HEADER
    routine = settings_phrase(actions)
    usual = settings_phrase({d: s for d, s in (common_settings or {}).items()
                             if not actions.get(d)})
    if not routine and not usual:
        return None
    body = ". ".join(p for p in (routine, f"Usually: {usual}" if usual else "") if p)
    return f"{header}: {body}."


def build_chat(
    messages: Sequence[Message | Mapping[str, Any]],
    system_prompt: str | None,
    max_context_messages: int = 5,
    profile: ProfileText | None = None,
) -> list[dict[str, str]]:
    """Chat messages for predicting the turn after `messages` (the history before it).

    Keeps the last `max_context_messages` user/assistant pairs, i.e. at most twice that many
    messages, then drops a leading assistant message so the context opens with the user.
    The system message is always present: `None` (or "") becomes an empty one, because some
    chat templates (SmolLM2, Qwen2.5) otherwise inject their own default persona. `profile`
    goes on its own line before the first user message of the window (a user message of its
    own when the window has none) or after the system prompt.
    """
    if max_context_messages < 0:
        raise AdaptCommandError(f"max_context_messages must be >= 0, got {max_context_messages}")
    window = [_as_message(m, i) for i, m in enumerate(messages)]
    window = window[-2 * max_context_messages :] if max_context_messages else []
    if window and window[0].role == "assistant":
        window = window[1:]
    chat = [{"role": "system", "content": system_prompt or ""}]
    chat += [{"role": m.role, "content": m.text} for m in window]
    if profile is not None and profile.text:
        _place(chat, profile)
    return chat


def _place(chat: list[dict[str, str]], profile: ProfileText) -> None:
    if profile.placement == "system":
        chat[0]["content"] = "\n".join(p for p in (chat[0]["content"], profile.text) if p)
        return
    first_user = next((m for m in chat if m["role"] == "user"), None)
    if first_user is None:
        chat.append({"role": "user", "content": profile.text})
    else:
        first_user["content"] = f"{profile.text}\n{first_user['content']}"


def render_prompt(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Message | Mapping[str, Any]],
    system_prompt: str | None,
    max_context_messages: int = 5,
    profile: ProfileText | None = None,
) -> str:
    """The prompt text, ending with the template's assistant header so the model replies."""
    if not getattr(tokenizer, "chat_template", None):
        raise AdaptCommandError("the tokenizer has no chat template; use an instruct/chat model")
    chat = build_chat(messages, system_prompt, max_context_messages, profile)
    return tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)


def _as_message(message: Message | Mapping[str, Any], index: int) -> Message:
    if isinstance(message, Message):
        return message
    try:
        return Message.model_validate(message)
    except ValidationError as exc:
        field, reason = first_error(exc)
        raise DataError(reason, field=f"messages.{index}.{field}") from None
