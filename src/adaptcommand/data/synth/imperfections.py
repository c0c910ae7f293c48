"""How real users stray from their routines: one-day tweaks, part of a routine, corrections,
and habits that drift. The shares come from `SynthConfig`; these are the mechanics.

Every draw goes through `chance`, which draws nothing when its share is 0, so turning one
imperfection off leaves the rest of the random stream as it was.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from adaptcommand.data.schema import Routine, actions_dict
from adaptcommand.data.synth.devices import Values

Settings = dict[str, Values]

# Drift starts between these fractions of the history: late enough that some sessions show the
# old value, early enough that a 60% training split ends with the new one.
DRIFT_WINDOW = (0.15, 0.35)
_CHOICES = {"mode": ("cool", "heat", "auto"), "color": ("warm", "cool", "neutral"),
            "light_mode": ("static", "dynamic"),
            "input_source": ("HDMI1", "HDMI2", "AV", "Netflix", "YouTube"),
            "equalizer": ("bass boost", "balanced", "treble boost")}
# Steps a person changes a number by: a degree or two, a notch of fan, 5-20 points of a percentage.
_STEPS = {"temperature": (1, 1, 2), "fan_speed": (1,)}
_PCT_STEPS = (5, 10, 10, 15, 20)
_LIMITS = {"temperature": (16, 30), "fan_speed": (0, 3)}


def chance(rng: random.Random, share: float) -> bool:
    """True with probability `share`; draws nothing from `rng` when the share is 0."""
    return share > 0 and rng.random() < share


@dataclass(frozen=True)
class Drift:
    """From session `start` on, `device.param` holds the routine's value; before, `old`."""

    start: int
    device: str
    param: str
    old: Any


def changeable(settings: Settings) -> list[tuple[str, str]]:
    """(device, param) pairs a person would nudge (not arming, which is no matter of taste)."""
    return [(d, p) for d, values in settings.items() for p in values if p != "armed"]


def nudge(rng: random.Random, device: str, param: str, value: Any) -> Any:
    """A different plausible value for one setting: a step up or down, or another option."""
    if isinstance(value, str):
        key = "light_mode" if (device, param) == ("lights", "mode") else param
        return rng.choice([v for v in _CHOICES[key] if v != value])
    low, high = _LIMITS.get(param, (0, 100))
    step = rng.choice(_STEPS.get(param, _PCT_STEPS))
    options = [v for v in (value - step, value + step) if low <= v <= high]
    return rng.choice(options) if options else (low if value != low else high)


def make_drifts(rng: random.Random, routines: list[Routine], n_sessions: int,
                share: float) -> dict[int, Drift]:
    """Which routines drift, from which session, and what they held before."""
    drifts = {}
    for index, routine in enumerate(routines):
        if not chance(rng, share):
            continue
        options = changeable(actions_dict(routine.actions))
        if not options:
            continue
        device, param = rng.choice(options)
        value = actions_dict(routine.actions)[device][param]
        low, high = (round(f * n_sessions) for f in DRIFT_WINDOW)
        drifts[index] = Drift(rng.randint(max(1, low), max(1, high)), device, param,
                              nudge(rng, device, param, value))
    return drifts


def settings_at(routine: Routine, session_id: int, drift: Drift | None) -> Settings:
    """A routine's settings as they were at one session (its old value before a drift)."""
    settings = {d: dict(v) for d, v in actions_dict(routine.actions).items()}
    if drift is not None and session_id < drift.start:
        settings[drift.device][drift.param] = drift.old
    return settings


def apply_part(rng: random.Random, settings: Settings, share: float) -> Settings:
    """Only part of the routine (some devices left out, one at least kept), with `share`."""
    if len(settings) < 2 or not chance(rng, share):
        return settings
    kept = rng.sample(sorted(settings), rng.randint(1, len(settings) - 1))
    return {d: v for d, v in settings.items() if d in kept}


def tweak(rng: random.Random, settings: Settings,
          share: float) -> tuple[str, str, Any] | None:
    """With `share`, change one value for this session only; returns (device, param, routine
    value) of the change."""
    options = changeable(settings)
    if not options or not chance(rng, share):
        return None
    device, param = rng.choice(options)
    usual = settings[device][param]
    settings[device][param] = nudge(rng, device, param, usual)
    return device, param, usual


_MORE = {"temperature": "warmer", "brightness": "brighter", "volume": "louder",
         "fan_speed": "stronger", "alarm_volume": "louder"}
_LESS = {"temperature": "cooler", "brightness": "dimmer", "volume": "quieter",
         "fan_speed": "gentler", "alarm_volume": "quieter"}


def direction(param: str, old: Any, new: Any) -> str | None:
    """'warmer', 'dimmer'...: how a person says which way a number moved."""
    if isinstance(new, str) or param not in _MORE:
        return None
    return _MORE[param] if new > old else _LESS[param]
