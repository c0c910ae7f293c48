"""The EdgeWisePersona schema as pydantic models: the contract of every stage.

Source: Bartkowiak & Podstawski, "EdgeWisePersona: A Dataset for On-Device User Profiling from
Natural Language Interactions" (arXiv:2505.11417, CC BY 4.0; `TCLResearchEurope/EdgeWisePersona`
on the Hugging Face Hub). Three line-aligned JSONL files, line i = user i: `characters.jsonl`
({character}), `routines.jsonl` ({routines: [Routine]}), `sessions.jsonl` ({sessions: [Session]},
in time order). A Routine is {triggers, actions}; a Session is {session_id, meta, messages,
applied_routines, session_summarization}. The enums and ranges below are the whole schema;
README ("The pipeline", data) and docs/ARCHITECTURE.md ("Data: prepare and splits") describe
how the project reads and splits it.

The schema is closed: unknown fields are rejected, values are range- and enum-checked, so a bad
record fails with the offending field named.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from adaptcommand.config import StrictModel

Percent = Annotated[int, Field(ge=0, le=100)]
TimeOfDay = Literal["morning", "afternoon", "evening", "night"]
DayOfWeek = Literal["weekday", "weekend"]
SunPhase = Literal["before_sunrise", "daylight", "after_sunset"]
Weather = Literal["sunny", "cloudy", "rainy", "snowy"]
OutdoorTemp = Literal["very cold", "cold", "mild", "warm", "hot"]
Role = Literal["user", "assistant"]

TRIGGER_VALUES: dict[str, tuple[str, ...]] = {
    "time_of_day": ("morning", "afternoon", "evening", "night"),
    "day_of_week": ("weekday", "weekend"),
    "sun_phase": ("before_sunrise", "daylight", "after_sunset"),
    "weather": ("sunny", "cloudy", "rainy", "snowy"),
    "outdoor_temp": ("very cold", "cold", "mild", "warm", "hot"),
}


class Character(StrictModel):
    character: str = Field(min_length=1)


class Triggers(StrictModel):
    time_of_day: TimeOfDay | None = None
    day_of_week: DayOfWeek | None = None
    sun_phase: SunPhase | None = None
    weather: Weather | None = None
    outdoor_temp: OutdoorTemp | None = None


class TV(StrictModel):
    volume: Percent | None = None
    brightness: Percent | None = None
    input_source: Literal["HDMI1", "HDMI2", "AV", "Netflix", "YouTube"] | None = None


class AC(StrictModel):
    temperature: Annotated[int, Field(ge=16, le=30)] | None = None
    mode: Literal["cool", "heat", "auto"] | None = None
    fan_speed: Annotated[int, Field(ge=0, le=3)] | None = None


class Lights(StrictModel):
    brightness: Percent | None = None
    color: Literal["warm", "cool", "neutral"] | None = None
    mode: Literal["static", "dynamic"] | None = None


class Speaker(StrictModel):
    volume: Percent | None = None
    equalizer: Literal["bass boost", "balanced", "treble boost"] | None = None


class Security(StrictModel):
    armed: bool | None = None
    alarm_volume: Percent | None = None


class Actions(StrictModel):
    tv: TV | None = None
    ac: AC | None = None
    lights: Lights | None = None
    speaker: Speaker | None = None
    security: Security | None = None


DEVICE_MODELS: dict[str, type[StrictModel]] = {
    "tv": TV,
    "ac": AC,
    "lights": Lights,
    "speaker": Speaker,
    "security": Security,
}
DEVICES: tuple[str, ...] = tuple(DEVICE_MODELS)
NUMERIC_PARAMS: frozenset[tuple[str, str]] = frozenset(
    {
        ("tv", "volume"), ("tv", "brightness"), ("ac", "temperature"), ("ac", "fan_speed"),
        ("lights", "brightness"), ("speaker", "volume"), ("security", "alarm_volume"),
    }
)


class Routine(StrictModel):
    triggers: Triggers
    actions: Actions


class SessionMeta(StrictModel):
    time_of_day: TimeOfDay
    day_of_week: DayOfWeek
    sun_phase: SunPhase
    weather: Weather
    outdoor_temp: OutdoorTemp


class Message(StrictModel):
    role: Role
    text: str


class Session(StrictModel):
    session_id: int
    meta: SessionMeta
    messages: list[Message]
    applied_routines: list[int] | None = None
    session_summarization: str | None = None


class CleanDialogue(StrictModel):
    """One line of `dialogs_clean.jsonl`. Only persona_id and messages are required, so that
    already-cleaned files such as the real sample (which also carries `dialogue_idx`) load too."""

    persona_id: str = Field(min_length=1)
    session_id: int | None = None
    dialogue_idx: int | None = None
    character: str | None = None
    routines: list[Routine] | None = None
    meta: SessionMeta | None = None
    messages: list[Message]
    applied_routines: list[int] | None = None


def actions_dict(actions: Actions) -> dict[str, dict[str, object]]:
    """The schema's compact form `{device: {param: value}}`; untouched devices/params left out."""
    return {
        device: {k: v for k, v in settings.model_dump().items() if v is not None}
        for device, settings in actions
        if settings is not None
    }
