"""Profile arms' prompt: the profile line, its two placements, the session's context sentence,
and the profile-distilled training dialogues (deterministic, built from a UserProfile only)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from adaptcommand.arms.distilled import (
    CONTEXT_REQUESTS,
    DEVICE_NAMES,
    DEVICE_REQUESTS,
    IMPLICIT_REQUESTS,
    ReplyStyle,
    distilled_dialogues,
    reply_style,
    routine_label,
)
from adaptcommand.data.schema import CleanDialogue, Message, SessionMeta
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.evaluation.personal_values import is_implicit_request
from adaptcommand.models.profile_prompt import asks_for_known_settings, profile_text
from adaptcommand.models.prompting import ProfileText, build_chat, profile_line
from adaptcommand.routines.profile import MinedRoutine, UserProfile

EVENING = {"time_of_day": "evening", "day_of_week": "weekday"}
META = {"time_of_day": "evening", "day_of_week": "weekday", "sun_phase": "after_sunset",
        "weather": "rainy", "outdoor_temp": "cold"}


def make_profile() -> UserProfile:
    """Hand-built, as `routines mine` writes it: an evening routine, a more specific rainy one
    and usual settings."""
    return UserProfile(persona_id="persona_007", sessions_used=12, common_settings={
        "speaker": {"volume": 30}, "ac": {"temperature": 24}}, routines=[
        MinedRoutine(triggers=EVENING, support=4, sessions=[1, 3, 5, 9],
                     actions={"ac": {"temperature": 22, "mode": "heat"},
                              "lights": {"brightness": 50, "color": "warm"}}),
        MinedRoutine(triggers={**EVENING, "weather": "rainy"}, support=2, sessions=[2, 7],
                     actions={"tv": {"volume": 15, "input_source": "Netflix"},
                              "security": {"armed": True, "alarm_volume": 60}}),
        MinedRoutine(triggers={"time_of_day": "morning"}, support=2, sessions=[4, 6],
                     actions={"speaker": {"volume": 45, "equalizer": "bass boost"},
                              "lights": {"mode": "dynamic"}}),
    ])


def options(profile: str = "line", placement: str = "user", context_line: bool = False):
    return SimpleNamespace(profile=profile, profile_placement=placement,
                           context_line=context_line)


def test_profile_line_states_the_routine_then_usual_settings_of_other_devices() -> None:
    routine = make_profile().routines[0]
    line = profile_line(routine.triggers, routine.actions, make_profile().common_settings)
    assert line == ("User profile (evening, weekday): ac temperature 22, mode heat; lights "
                    "brightness 50, color warm. Usually: speaker volume 30.")
    assert profile_line({}, {}, {"security": {"armed": False}}) == (
        "User profile: Usually: security disarmed.")
    assert profile_line({}, {}, {}) is None


def test_profile_text_picks_the_most_specific_routine_for_the_session() -> None:
    text = profile_text(options(), make_profile(), META)
    assert text == ProfileText("User profile (evening, weekday, rainy): tv volume 15, input "
                               "source Netflix; security armed, alarm volume 60. Usually: ac "
                               "temperature 24; speaker volume 30.", "user")
    with_context = profile_text(options(context_line=True, placement="system"), make_profile(),
                                SessionMeta(**{**META, "weather": "sunny"}))
    assert with_context.placement == "system"
    assert with_context.text.startswith("It's a sunny, cold weekday evening after sunset. "
                                        "User profile (evening, weekday): ac temperature 22")
    assert profile_text(options(profile="none"), make_profile(), META) is None
    context_only = profile_text(options(profile="none", context_line=True), None, META)
    assert context_only.text == "It's a rainy, cold weekday evening after sunset."


def test_placements_user_first_message_or_system_prompt() -> None:
    history = [Message(role="user", text="Hi"), Message(role="assistant", text="Hello"),
               Message(role="user", text="The usual.")]
    user = build_chat(history, "sys", 5, ProfileText("P.", "user"))
    assert [m["content"] for m in user] == ["sys", "P.\nHi", "Hello", "The usual."]
    system = build_chat(history, "sys", 5, ProfileText("P.", "system"))
    assert [m["content"] for m in system] == ["sys\nP.", "Hi", "Hello", "The usual."]
    slid = build_chat(history, "sys", 1, ProfileText("P.", "user"))  # window: "The usual."
    assert [m["content"] for m in slid] == ["sys", "P.\nThe usual."]
    alone = build_chat([], None, 5, ProfileText("P.", "user"))
    assert alone == [{"role": "system", "content": ""}, {"role": "user", "content": "P."}]
    assert build_chat(history, "sys", 5, None) == build_chat(history, "sys", 5)


@pytest.mark.parametrize(("request_", "reply", "known"), [
    # on a rainy evening the line states the rainy routine (TV, security) and the usual AC;
    # judged per device: the AC's mode is not in the line, its temperature is
    ("Adjust the AC, please.", "What temperature and mode would you like for the AC?", True),
    ("The telly, please.", "Sure. What volume would you like me to set it to?", True),
    # the line says nothing of the lights on a rainy evening; a reply that applies asks nothing
    ("Dim the lamps.", "What brightness would you like for the lamps?", False),
    ("Adjust the AC, please.", "Setting the AC to 22 degrees. What mode would you like?", False),
])
def test_a_question_is_known_when_the_line_states_every_device_it_asks_for(
        request_: str, reply: str, known: bool) -> None:
    dialogue = CleanDialogue(persona_id="persona_007", meta=SessionMeta.model_validate(META),
                             messages=[{"role": "user", "text": request_},
                                       {"role": "assistant", "text": reply}])
    assert asks_for_known_settings(dialogue, 1, make_profile()) is known
    assert asks_for_known_settings(dialogue, 1, None) is False


def test_distilled_replies_state_exactly_what_the_implicit_request_asks_for() -> None:
    """A whole-routine request is answered with the whole routine, a one-device request with
    that device's values of it."""
    profile = make_profile()
    dialogues = distilled_dialogues(profile, 4, seed=0)
    assert len(dialogues) == 4 * len(profile.routines)
    answered = []
    for i, dialogue in enumerate(dialogues):
        routine = profile.routines[i // 4]
        request, reply = dialogue.messages
        assert request.role == "user" and reply.role == "assistant"
        assert is_implicit_request(request.text), request.text
        assert not any(extract_actions(request.text).values())  # it states no value
        stated = extract_actions(reply.text)
        named = [device for device, names in DEVICE_NAMES.items()
                 if any(re.search(rf"\b{name}\b", request.text, re.I) for name in names)]
        expected = ({named[0]: routine.actions[named[0]]} if len(named) == 1
                    else routine.actions)
        assert stated == expected, (request.text, reply.text)
        answered.append(len(named) == 1)
        assert all(getattr(dialogue.meta, f) == v for f, v in routine.triggers.items())
    assert any(answered) and not all(answered)  # both kinds of request occur
    # the rainy routine must not be claimed by the evening one, and vice versa
    for dialogue in dialogues[:4]:
        assert dialogue.meta.weather != "rainy"
    assert all(is_implicit_request(r.format(label="rainy-evening", device=name))
               for r in (*CONTEXT_REQUESTS, *IMPLICIT_REQUESTS, *DEVICE_REQUESTS)
               for names in DEVICE_NAMES.values() for name in names)
    assert len({d.messages[0].text for d in distilled_dialogues(profile, 12, 0)}) > 12


def test_distilled_dialogues_are_deterministic_and_depend_only_on_profile_and_seed() -> None:
    first = distilled_dialogues(make_profile(), 3, seed=5)
    assert first == distilled_dialogues(make_profile(), 3, seed=5)
    assert first != distilled_dialogues(make_profile(), 3, seed=6)
    assert distilled_dialogues(make_profile(), 0, seed=5) == []


def test_reply_style_comes_from_the_personas_own_replies() -> None:
    said = [CleanDialogue(persona_id="p", messages=[
        Message(role="user", text="Lights please."),
        Message(role="assistant", text=f"Right away, Ana! Lights at {40 + i}%. Enjoy!"),
        Message(role="user", text="Thanks."),
        Message(role="assistant", text="Anything else?"),  # applies nothing: not used
    ]) for i in range(3)]
    style = reply_style(said)
    assert style == ReplyStyle(("Right away, Ana!",), ("Enjoy!",))
    (dialogue, *_) = distilled_dialogues(make_profile(), 1, seed=0, style=style)
    reply = dialogue.messages[1].text
    assert reply.startswith("Right away, Ana! ") and reply.endswith(" Enjoy!")
    assert extract_actions(reply) == make_profile().routines[0].actions


@pytest.mark.parametrize(("triggers", "label"), [
    (EVENING, "weekday-evening"), ({"weather": "rainy", "time_of_day": "evening"},
                                   "rainy-evening"), ({}, "day"),
    ({"outdoor_temp": "very cold", "sun_phase": "daylight"}, "very-cold"),
])
def test_routine_label(triggers: dict, label: str) -> None:
    assert routine_label(triggers) == label
