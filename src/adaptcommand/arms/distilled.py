"""Profile-distilled training dialogues: the user's mined routines written into examples, so an
adapter can learn what the profile knows and answer "my usual" with no profile in the prompt.

For each mined routine, `n` short dialogues of one exchange: the user asks with the context
only ("It's a rainy weekday evening. Set things up the way I like.") or implicitly ("My usual
rainy-evening setup, please."), and the assistant answers with every value of the routine; or
the user asks for one device of it the way conversations do ("The TV as usual, thanks."), and
the assistant answers with that device's values only (in conversation an adapter that learned
only whole-routine answers asks "What volume would you like?" instead). Replies are in
an extractor-readable wording, opened and closed the way this user's assistant talks (sentences
taken from the persona's own train replies, when given). The session's `meta` is a context the
routine's triggers match, so profile and context lines render for them as for a real session.

Everything comes from a `UserProfile` (mined from the train split) and, for the wording, the
persona's train dialogues: never val/test sessions or the dataset's routines. The same seed,
profile and style give the same dialogues.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaptcommand.data.schema import TRIGGER_VALUES, CleanDialogue, SessionMeta, Triggers
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.models.prompting import trigger_sentence
from adaptcommand.routines.profile import MinedRoutine, UserProfile, routine_for_context

CONTEXT_REQUESTS = (
    "Set things up the way I like.", "Get everything ready the way I like it.",
    "You know what I want.", "Do your thing, like always.", "Set it all up like usual, please.",
    "Make it how I usually have it.",
)
IMPLICIT_REQUESTS = (
    "My usual {label} setup, please.", "Can you do my {label} routine?",
    "Set things up like I usually have them on a {label}.", "The usual for a {label}, please.",
    "You know how I like it on a {label}.", "Same as always for a {label}.",
)
DEVICE_REQUESTS = (
    "The {device} as usual, thanks.", "Set up the {device} the way I always have it.",
    "Could you get the {device} going with my normal settings?",
    "I want the {device} how I normally like it.", "My regular {device} settings, please.",
    "And the {device}, like I usually have it.",
)
DEVICE_NAMES = {"ac": ("AC", "air conditioner"), "lights": ("lights", "lamps"),
                "tv": ("TV", "television"), "speaker": ("speaker", "sound system"),
                "security": ("security system", "alarm")}
# Bumped whenever the dialogues change for the same profile and seed, so that stages trained
# on them are redone (demo stage fingerprints); 2: one-device requests.
DISTILLED_VERSION = 2
LEADS = ("Setting", "I'm setting", "Okay, setting", "Now setting")
MAX_STYLE_WORDS = 10
_META_TRIES = 20
# device -> (head, separator, param -> wording); security has its own sentence
_CLAUSES = {
    "ac": ("the AC to ", " ", {"temperature": "{} degrees", "mode": "in {} mode",
                               "fan_speed": "with fan speed {}"}),
    "lights": ("the lights to ", ", ", {"brightness": "{}% brightness", "color": "{} color",
                                        "mode": "{} mode"}),
    "tv": ("the TV ", ", ", {"volume": "volume to {}", "brightness": "brightness to {}",
                             "input_source": "input to {}"}),
    "speaker": ("the speaker ", " ", {"volume": "volume to {}",
                                      "equalizer": "with the {} equalizer"}),
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class ReplyStyle:
    """How this user's assistant opens and closes a reply that applies settings."""

    openers: tuple[str, ...] = ()
    closers: tuple[str, ...] = ()


def reply_style(dialogues: Iterable[CleanDialogue], keep: int = 5) -> ReplyStyle:
    """The `keep` most common short opening and closing sentences that state no setting, of the
    persona's assistant replies that apply settings (pass its train dialogues only)."""
    openers: Counter[str] = Counter()
    closers: Counter[str] = Counter()
    for dialogue in dialogues:
        for message in dialogue.messages:
            if message.role != "assistant" or not extract_actions(message.text):
                continue
            sentences = _sentences(message.text)
            if len(sentences) > 1 and _plain(sentences[0]):
                openers[sentences[0]] += 1
            if len(sentences) > 1 and _plain(sentences[-1]):
                closers[sentences[-1]] += 1
    return ReplyStyle(tuple(s for s, _ in openers.most_common(keep)),
                      tuple(s for s, _ in closers.most_common(keep)))


def _sentences(text: str) -> list[str]:
    return [part for part in _SENTENCE_END.split(text.strip()) if part]


def _plain(sentence: str) -> bool:
    """A sentence that sets nothing, names no value and is short: safe to reuse anywhere."""
    return (len(sentence.split()) <= MAX_STYLE_WORDS and not any(c.isdigit() for c in sentence)
            and not extract_actions(sentence, commitments_only=False))


def _device_clause(device: str, settings: Mapping[str, Any]) -> str:
    """One device's settings in words the action extractor reads back exactly."""
    head, separator, formats = _CLAUSES[device]
    return head + separator.join(form.format(settings[param]) for param, form in formats.items()
                                 if param in settings)


def _security_sentence(settings: Mapping[str, Any]) -> str:
    armed = settings.get("armed")
    head = ("Arming the security system" if armed else
            "Disarming the security system" if armed is False else "Setting the security system")
    volume = settings.get("alarm_volume")
    return head + (f" with the alarm volume at {volume}." if volume is not None else ".")


def routine_reply(actions: Mapping[str, Mapping[str, Any]], rng: random.Random,
                  style: ReplyStyle = ReplyStyle()) -> str:
    """A reply applying every setting of `actions`, one sentence per device."""
    sentences = [rng.choice(style.openers)] if style.openers else []
    for device, settings in actions.items():
        if not settings:
            continue
        if device == "security":
            sentences.append(_security_sentence(settings))
        else:
            sentences.append(f"{rng.choice(LEADS)} {_device_clause(device, settings)}.")
    if style.closers:
        sentences.append(rng.choice(style.closers))
    return " ".join(sentences)


def routine_label(triggers: Mapping[str, str]) -> str:
    """The triggers as a compound noun, e.g. "rainy weekday-evening" -> "rainy-weekday-evening"."""
    words = [triggers[f].replace("_", " ").replace(" ", "-") for f in TRIGGER_VALUES
             if f in triggers and f != "sun_phase"]
    return "-".join(reversed(words)) or "day"


def matching_meta(profile: UserProfile, routine: MinedRoutine,
                  rng: random.Random) -> SessionMeta:
    """A full session context its triggers match and for which `routine_for_context` picks this
    routine (a more specific routine would otherwise claim it), when one is found."""
    meta = None
    for _ in range(_META_TRIES):
        values = {field: routine.triggers.get(field) or rng.choice(options)
                  for field, options in TRIGGER_VALUES.items()}
        meta = SessionMeta.model_validate(values)
        if routine_for_context(profile, meta) is routine:
            break
    assert meta is not None
    return meta


def request(routine: MinedRoutine,
            rng: random.Random) -> tuple[str, Mapping[str, Mapping[str, Any]]]:
    """A context-only request (trigger sentence + habit appeal), an implicit one for the whole
    routine, or one for a single device of it, a third each (a routine with no trigger has no
    context sentence: implicit instead); with the settings the answer states."""
    form = rng.randrange(3)
    context = trigger_sentence(Triggers.model_validate(routine.triggers))
    if form == 0 and context:
        return f"{context} {rng.choice(CONTEXT_REQUESTS)}", routine.actions
    if form == 1:
        device = rng.choice([device for device, settings in routine.actions.items() if settings])
        name = rng.choice(DEVICE_NAMES[device])
        return rng.choice(DEVICE_REQUESTS).format(device=name), {device: routine.actions[device]}
    label = routine_label(routine.triggers)
    return rng.choice(IMPLICIT_REQUESTS).format(label=label), routine.actions


def distilled_dialogues(profile: UserProfile, per_routine: int, seed: int,
                        style: ReplyStyle = ReplyStyle()) -> list[CleanDialogue]:
    """`per_routine` one-exchange dialogues for each routine of `profile` that sets anything."""
    dialogues = []
    for index, routine in enumerate(profile.routines):
        if not any(routine.actions.values()):
            continue
        for k in range(per_routine):
            rng = random.Random(f"distill:{seed}:{profile.persona_id}:{index}:{k}")
            text, actions = request(routine, rng)
            messages = [{"role": "user", "text": text},
                        {"role": "assistant", "text": routine_reply(actions, rng, style)}]
            dialogues.append(CleanDialogue(persona_id=profile.persona_id,
                                           meta=matching_meta(profile, routine, rng),
                                           messages=messages))
    return dialogues


def distilled_for(profiles: Mapping[str, UserProfile],
                  train: Mapping[str, Sequence[CleanDialogue]], per_routine: int,
                  seed: int) -> dict[str, list[CleanDialogue]]:
    """Distilled dialogues of each profiled persona, worded in the style of its train replies."""
    return {pid: distilled_dialogues(profile, per_routine, seed, reply_style(train.get(pid, ())))
            for pid, profile in profiles.items()}
