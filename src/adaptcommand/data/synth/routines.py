"""Contexts and routines: when a user does what, as trigger -> device-settings rules.

Contexts (session meta and routine triggers) are drawn from one joint distribution that keeps
them plausible (no afternoon before sunrise, no snow on a hot day). Each user has habits (a
preferred heating temperature, evening light level, TV volume...) and every routine's values are
those habits bent by its context, so values are user-specific and consistent across routines:
what a per-user model can learn and a shared one cannot.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import cache
from typing import Any

from adaptcommand.data.schema import (
    DEVICE_MODELS,
    TRIGGER_VALUES,
    Actions,
    Routine,
    SessionMeta,
    Triggers,
)
from adaptcommand.data.synth.sampling import pick, weighted_sample

Context = dict[str, str]
Values = dict[str, Any]

# Routine shape, tuned so the means land on the published 3.98 / 4.98 / 3.11 / 8.24.
ROUTINES_PER_USER = {3: 0.03, 4: 0.96, 5: 0.01}
DEVICES_PER_ROUTINE = {1: 0.02, 2: 0.21, 3: 0.45, 4: 0.29, 5: 0.03}
PARTIAL_DEVICE_RATE = 0.11

_TIME = {"morning": 0.28, "afternoon": 0.22, "evening": 0.3, "night": 0.2}
_DAY = {"weekday": 0.6, "weekend": 0.4}
_SUN = {
    "morning": {"before_sunrise": 0.35, "daylight": 0.65},
    "afternoon": {"daylight": 1.0},
    "evening": {"after_sunset": 0.65, "daylight": 0.35},
    "night": {"after_sunset": 0.85, "before_sunrise": 0.15},
}
_WEATHER_DAY = {"sunny": 0.35, "cloudy": 0.3, "rainy": 0.22, "snowy": 0.13}
_WEATHER_DARK = {"sunny": 0.08, "cloudy": 0.4, "rainy": 0.32, "snowy": 0.2}
_TEMP = {
    "sunny": {"cold": 0.1, "mild": 0.25, "warm": 0.35, "hot": 0.3},
    "cloudy": {"very cold": 0.08, "cold": 0.3, "mild": 0.37, "warm": 0.2, "hot": 0.05},
    "rainy": {"very cold": 0.05, "cold": 0.4, "mild": 0.4, "warm": 0.15},
    "snowy": {"very cold": 0.6, "cold": 0.4},
}
FIELDS: tuple[str, ...] = tuple(TRIGGER_VALUES)
DARK = ("after_sunset", "before_sunrise")


def context_weight(ctx: Context) -> float:
    """Joint plausibility of a full context (0 = impossible)."""
    weather = _WEATHER_DAY if ctx["sun_phase"] == "daylight" else _WEATHER_DARK
    return (_TIME[ctx["time_of_day"]] * _DAY[ctx["day_of_week"]]
            * _SUN[ctx["time_of_day"]].get(ctx["sun_phase"], 0.0)
            * weather[ctx["weather"]] * _TEMP[ctx["weather"]].get(ctx["outdoor_temp"], 0.0))


@cache
def _all_contexts() -> tuple[tuple[Context, ...], tuple[float, ...]]:
    combos = [dict(zip(FIELDS, values, strict=True))
              for values in itertools.product(*TRIGGER_VALUES.values())]
    kept = [c for c in combos if context_weight(c) > 0]
    return tuple(kept), tuple(itertools.accumulate(context_weight(c) for c in kept))


def sample_context(rng: random.Random, fixed: Context | None = None) -> Context:
    """A plausible full context agreeing with `fixed` (a routine's set triggers)."""
    if not fixed:
        contexts, cumulative = _all_contexts()
        return dict(rng.choices(contexts, cum_weights=cumulative)[0])
    missing = [f for f in FIELDS if f not in fixed]
    options = [{**fixed, **dict(zip(missing, values, strict=True))}
               for values in itertools.product(*(TRIGGER_VALUES[f] for f in missing))]
    weights = [context_weight(o) for o in options]
    if not any(weights):  # a routine whose set triggers are implausible together: keep them
        weights = [1.0] * len(options)
    chosen = rng.choices(options, weights=weights)[0]
    return {f: chosen[f] for f in FIELDS}


def set_triggers(routine: Routine) -> Context:
    return {f: v for f, v in routine.triggers.model_dump().items() if v is not None}


def matches(routine: Routine, ctx: Context) -> bool:
    return all(ctx[f] == v for f, v in set_triggers(routine).items())


def session_meta(rng: random.Random, routine: Routine | None,
                 routines: list[Routine], in_routine_context: bool = False) -> SessionMeta:
    """Meta of a session: the routine's triggers (others filled in); for a spontaneous session,
    a context in which none of the user's routines fires, or (`in_routine_context`) the context
    of one of them."""
    if routine is None and in_routine_context:
        routine = rng.choice(routines)
    if routine is not None:
        return SessionMeta(**sample_context(rng, set_triggers(routine)))
    while True:
        ctx = sample_context(rng)
        if not any(matches(r, ctx) for r in routines):
            return SessionMeta(**ctx)


@dataclass(frozen=True)
class Habits:
    """A user's preferred values, from which every routine of theirs is derived."""

    heat_temp: int
    cool_temp: int
    fan_speed: int
    bright_day: int
    bright_dark: int
    color_dark: str
    color_day: str
    light_mode: str
    tv_volume: int
    tv_brightness: int
    tv_source: str
    speaker_volume: int
    equalizer: str
    alarm_volume: int


def _step(rng: random.Random, low: int, high: int, step: int) -> int:
    return rng.randrange(low, high + 1, step)


def make_habits(rng: random.Random) -> Habits:
    heat = rng.randint(20, 26)
    return Habits(
        heat_temp=heat, cool_temp=rng.randint(17, min(heat - 1, 24)), fan_speed=rng.randint(1, 3),
        bright_day=_step(rng, 60, 100, 5), bright_dark=_step(rng, 20, 50, 5),
        color_dark=pick(rng, {"warm": 0.7, "neutral": 0.2, "cool": 0.1}),
        color_day=pick(rng, {"neutral": 0.4, "cool": 0.35, "warm": 0.25}),
        light_mode=pick(rng, {"static": 0.65, "dynamic": 0.35}),
        tv_volume=_step(rng, 15, 45, 5), tv_brightness=_step(rng, 40, 80, 10),
        tv_source=pick(rng, {"Netflix": 0.35, "YouTube": 0.25, "HDMI1": 0.2, "HDMI2": 0.1,
                              "AV": 0.1}),
        speaker_volume=_step(rng, 20, 60, 5),
        equalizer=pick(rng, {"balanced": 0.45, "bass boost": 0.35, "treble boost": 0.2}),
        alarm_volume=_step(rng, 50, 100, 10),
    )


def _pct(value: int) -> int:
    return max(0, min(100, value))


def _device_weights(ctx: Context) -> dict[str, float]:
    """Climate and light first, as in the real sessions; the rest by context."""
    dark = ctx["sun_phase"] in DARK or ctx["weather"] in ("rainy", "cloudy")
    return {
        "ac": 4.0 if ctx["outdoor_temp"] in ("very cold", "cold", "warm", "hot") else 2.0,
        "lights": 3.5 if dark else 2.0,
        "tv": 1.2 if ctx["time_of_day"] in ("evening", "night") else 0.7,
        "speaker": 0.6,
        "security": 0.7 if ctx["time_of_day"] == "night" else 0.25,
    }


def _routine_values(rng: random.Random, device: str, h: Habits, ctx: Context) -> Values:
    """One device's settings for a context, from the user's habits."""
    dark = ctx["sun_phase"] in DARK
    temp = ctx["outdoor_temp"]
    if device == "ac":
        mode = _fitting_mode(rng, ctx, odd=0.03)
        middle = (h.heat_temp + h.cool_temp) // 2
        base = {"heat": h.heat_temp, "cool": h.cool_temp}.get(mode, middle)
        extreme = temp in ("very cold", "hot")
        return {"temperature": max(16, min(30, base + rng.choice((-1, 0, 0, 1)))), "mode": mode,
                "fan_speed": min(3, h.fan_speed + int(extreme and rng.random() < 0.5))}
    if device == "lights":
        level = h.bright_dark if dark else h.bright_day
        return {"brightness": _pct(level + rng.choice((-10, -5, 0, 0, 5))),
                "color": (h.color_dark if dark else h.color_day) if rng.random() < 0.85
                else rng.choice(("warm", "cool", "neutral")),
                "mode": h.light_mode if rng.random() < 0.8 else rng.choice(("static", "dynamic"))}
    if device == "tv":
        return {"volume": _pct(h.tv_volume + rng.choice((-5, 0, 0, 5)) - 5 * dark),
                "brightness": _pct(h.tv_brightness - 10 * dark + rng.choice((-10, 0, 0, 10))),
                "input_source": h.tv_source if rng.random() < 0.6
                else rng.choice(("HDMI1", "HDMI2", "AV", "Netflix", "YouTube"))}
    if device == "speaker":
        return {"volume": _pct(h.speaker_volume + rng.choice((-10, -5, 0, 5, 10)) - 10 * dark),
                "equalizer": h.equalizer if rng.random() < 0.7
                else rng.choice(("bass boost", "balanced", "treble boost"))}
    away = ctx["time_of_day"] == "morning" and ctx["day_of_week"] == "weekday"
    armed = ctx["time_of_day"] == "night" or dark or away or rng.random() < 0.3
    return {"armed": armed, "alarm_volume": _pct(h.alarm_volume + rng.choice((-10, 0, 10)))}


def _overlaps(a: Context, b: Context) -> bool:
    """Two trigger sets that could fire in the same context."""
    return all(a[f] == b[f] for f in a.keys() & b.keys())


def _triggers(rng: random.Random, taken: list[Context], open_rate: float) -> Context:
    while True:
        ctx = sample_context(rng)
        if rng.random() < open_rate:
            del ctx[rng.choice(FIELDS)]
        if not any(_overlaps(ctx, other) for other in taken):
            return ctx


def make_routines(rng: random.Random, habits: Habits, open_rate: float) -> list[Routine]:
    """3-5 routines with pairwise exclusive triggers, values derived from `habits`; a share
    `open_rate` of them leave one trigger field open."""
    taken: list[Context] = []
    routines = []
    for _ in range(pick(rng, ROUTINES_PER_USER)):
        triggers = _triggers(rng, taken, open_rate)
        taken.append(triggers)
        full = sample_context(rng, triggers)
        weights = _device_weights(full)
        devices = weighted_sample(rng, weights, pick(rng, DEVICES_PER_ROUTINE))
        actions = {}
        for device in devices:
            values = _routine_values(rng, device, habits, full)
            if rng.random() < PARTIAL_DEVICE_RATE:
                del values[rng.choice(list(values))]
            actions[device] = DEVICE_MODELS[device](**values)
        routines.append(Routine(triggers=Triggers(**triggers), actions=Actions(**actions)))
    return routines


def _fitting_mode(rng: random.Random, ctx: Context, odd: float) -> str:
    """The AC mode the weather calls for, except in a share `odd` of cases."""
    if rng.random() < odd:
        return rng.choice(("cool", "heat", "auto"))
    temp = ctx["outdoor_temp"]
    return {"very cold": "heat", "cold": "heat", "warm": "cool", "hot": "cool"}.get(temp, "auto")


def adhoc_values(rng: random.Random, device: str, ctx: Context) -> Values:
    """Settings for a spontaneous request: any values, a random subset of the parameters."""
    full: Values = {
        "ac": {"temperature": rng.randint(17, 27), "mode": _fitting_mode(rng, ctx, odd=0.25),
               "fan_speed": rng.randint(0, 3)},
        "lights": {"brightness": _step(rng, 10, 100, 5),
                   "color": rng.choice(("warm", "cool", "neutral")),
                   "mode": rng.choice(("static", "dynamic"))},
        "tv": {"volume": _step(rng, 5, 60, 5), "brightness": _step(rng, 20, 100, 10),
               "input_source": rng.choice(("HDMI1", "HDMI2", "AV", "Netflix", "YouTube"))},
        "speaker": {"volume": _step(rng, 10, 80, 5),
                    "equalizer": rng.choice(("bass boost", "balanced", "treble boost"))},
        "security": {"armed": ctx["time_of_day"] == "night" or rng.random() < 0.5,
                     "alarm_volume": _step(rng, 30, 100, 10)},
    }[device]
    kept = rng.sample(list(full), rng.randint(1, len(full)))
    return {p: v for p, v in full.items() if p in kept}
