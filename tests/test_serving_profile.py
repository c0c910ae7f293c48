"""`serve` answers "the usual" from the user's profile: each request's prompt carries the
profile line the adapters were trained with, built by the same function, from that user's own
profile and the session context of the request (or the server clock)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from adaptcommand.models.profile_prompt import profile_text, write_persona_profiles
from adaptcommand.models.prompting import ProfileOptions
from adaptcommand.routines.profile import MinedRoutine, UserProfile
from adaptcommand.serving import app as app_module
from adaptcommand.serving.profile import clock_context
from test_profile_arms import recording
from test_serving import adapters, ask, assert_error, reply, serving, store

__all__ = ["adapters", "store"]  # fixtures shared with test_serving
EVENING = {"time_of_day": "evening", "day_of_week": "weekend", "weather": "rainy"}


def profile(pid: str, actions: dict) -> UserProfile:
    return UserProfile(persona_id=pid, sessions_used=5, routines=[MinedRoutine(
        triggers={"time_of_day": "evening"}, actions=actions, support=3, sessions=[1, 2, 3])],
        common_settings={"speaker": {"volume": 12 if pid.endswith("0") else 88}})


PROFILES = {"persona_000": profile("persona_000", {"lights": {"brightness": 40}}),
            "persona_001": profile("persona_001", {"ac": {"temperature": 27, "mode": "heat"}})}


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every prompt the server renders from now on."""
    return recording(monkeypatch, app_module)


def trained_with_profiles(adapters: Path, **prompt: object) -> None:
    """The adapters' manifest says they were trained with these prompt options; each user's
    profile.json lies beside their adapter, as training writes it."""
    (adapters / "manifest.json").write_text(json.dumps(
        {"strategy": "per_user", "base_model": "tiny-random", "config": prompt}))
    write_persona_profiles(adapters, PROFILES)


def test_each_user_gets_their_own_profile_line(adapters: Path, rendered: list[str]) -> None:
    trained_with_profiles(adapters, profile="line")
    with serving(adapters) as client:
        for user in PROFILES:
            reply(ask(client, user, "Set things up the way I like.", metadata=EVENING))
        reply(ask(client, "persona_000", "Hi.", metadata={"time_of_day": "morning",
                                                          "trace": "client tag"}))
        reply(ask(client, None, "Hi.", metadata=EVENING))  # nobody: no profile
    options = ProfileOptions(profile="line")
    lines = {pid: profile_text(options, p, EVENING).text for pid, p in PROFILES.items()}
    assert lines["persona_000"] == ("User profile (evening): lights brightness 40. "
                                    "Usually: speaker volume 12.")
    assert f"{lines['persona_000']}\nSet things up" in rendered[0]  # before the user message
    assert lines["persona_001"] in rendered[1]
    assert "temperature 27" not in rendered[0] and "volume 88" not in rendered[0]
    assert "brightness 40" not in rendered[1] and "volume 12" not in rendered[1]
    morning = profile_text(options, PROFILES["persona_000"], {"time_of_day": "morning"}).text
    assert morning == "User profile: Usually: speaker volume 12." and morning in rendered[2]
    assert "User profile" not in rendered[3]


def test_placement_context_and_override_follow_the_settings(adapters: Path,
                                                            rendered: list[str]) -> None:
    trained_with_profiles(adapters, profile="line", profile_placement="system",
                          context_line=True)
    with serving(adapters) as client:
        reply(ask(client, "persona_001", "Hi.", metadata=EVENING))
        bad = ask(client, "persona_001", "Hi.", metadata={"weather": "foggy"})
    system = rendered[0].split("<|im_end|>")[0]
    assert "It's a rainy weekend evening. User profile (evening): ac temperature 27" in system
    assert_error(bad, 400, "metadata.weather")
    with serving(adapters, prompt_profile="none") as client:
        reply(ask(client, "persona_001", "Hi.", metadata=EVENING))
    assert "User profile" not in rendered[1] and "It's a rainy weekend evening." in rendered[1]
    (adapters / "manifest.json").unlink()  # adapters trained elsewhere: no profile line ...
    with serving(adapters) as client:
        reply(ask(client, "persona_001", "Hi.", metadata=EVENING))
        reply(ask(client, "persona_001", "Hi.", metadata={"weather": "foggy"}))  # unread
    with serving(adapters, prompt_profile="line") as client:  # ... unless asked for
        reply(ask(client, "persona_001", "Hi.", metadata=EVENING))
    assert "User profile" not in rendered[2] and "foggy" not in rendered[3]
    assert "User profile (evening): ac temperature 27" in rendered[4]


def test_routines_endpoint_reads_the_profile_json_training_writes(adapters: Path) -> None:
    write_persona_profiles(adapters, PROFILES)
    with serving(adapters) as client:
        found = client.get("/v1/users/persona_001/routines").json()
    assert found["routines"][0]["actions"] == {"ac": {"temperature": 27, "mode": "heat"}}


@pytest.mark.parametrize(("now", "context"), [
    (datetime(2026, 11, 28, 19, 30), {"time_of_day": "evening", "day_of_week": "weekend"}),
    (datetime(2026, 11, 30, 8), {"time_of_day": "morning", "day_of_week": "weekday"}),
    (datetime(2026, 11, 30, 12), {"time_of_day": "afternoon", "day_of_week": "weekday"}),
    (datetime(2026, 11, 29, 23), {"time_of_day": "night", "day_of_week": "weekend"}),
    (datetime(2026, 12, 1, 4, 59), {"time_of_day": "night", "day_of_week": "weekday"}),
])
def test_the_clock_gives_time_of_day_and_day_of_week(now: datetime, context: dict) -> None:
    assert clock_context(now) == context
