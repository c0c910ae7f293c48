"""What users say around their requests: remarks on the weather and time of day, on what
they are doing, reasons for a change, and the names they give their routines.

Remarks come from the session's meta and the persona's hobbies, so they fit the context; none
states a device setting value.
"""

from __future__ import annotations

import random

from adaptcommand.data.schema import SessionMeta
from adaptcommand.data.synth.devices import Values
from adaptcommand.data.synth.lexicon import Hobby
from adaptcommand.data.synth.phrasing import sentence

_WEATHER = {
    "rainy": ("it's pouring outside", "the rain is really coming down",
              "it's been raining all {period}", "the rain is tapping on the windows",
              "it's wet and grey out there", "it's drizzling out",
              "there's a proper downpour out there", "the rain won't stop"),
    "snowy": ("it's snowing like crazy", "the snow is coming down hard",
              "everything's white with snow", "it's been snowing all {period}",
              "the snow is falling softly outside", "there's a blizzard out there",
              "the snow keeps piling up"),
    "sunny": ("the sun is out", "it's bright and sunny", "the sun's blazing",
              "it's a lovely clear {period}", "the sunlight is streaming in",
              "there's not a cloud in the sky"),
    "cloudy": ("it's grey and overcast", "the sky is all clouds", "it's a gloomy {period}",
               "the clouds are rolling in", "it's cloudy out", "the sky looks heavy"),
}
_CLEAR_DARK = ("the sky is clear tonight", "it's a clear, still night", "the stars are out")
_TEMP = {
    "very cold": ("it's freezing out there", "it's bitterly cold", "it's well below freezing",
                  "the cold bites right through you"),
    "cold": ("it's chilly", "it's rather cold", "there's a nip in the air", "it's a bit cold out"),
    "mild": ("it's mild out", "the air is pleasant", "it's neither hot nor cold",
             "the weather is gentle"),
    "warm": ("it's warm out", "it's quite warm today", "it's a balmy {period}",
             "the air is warm"),
    "hot": ("it's boiling hot", "it's sweltering", "the heat is unbearable",
            "it's scorching out there"),
}
_TEMP_ADJ = {"very cold": "freezing", "cold": "chilly", "mild": "mild", "warm": "warm",
             "hot": "hot"}
_WEATHER_ADJ = {"rainy": ("rainy", "soggy", "dreary"), "snowy": ("snowy", "wintry"),
                "sunny": ("sunny", "bright"), "cloudy": ("grey", "cloudy", "gloomy")}
_WHEN = {"morning": "this morning", "afternoon": "this afternoon", "evening": "this evening",
         "night": "tonight"}
_DAY = {
    "weekend": ("Finally the weekend.", "Lazy weekend {period}.", "No work today.",
                "It's the weekend at last.", "Weekends are the best."),
    "weekday": ("Long day at work.", "Busy day today.", "Another workday.",
                "Work was exhausting.", "Back to the grind."),
}
_ACTIVITY = ("I'm about to {do}.", "I'm {doing} right now.", "Just {done}.",
             "I need to focus on {doing}.", "I'm going to {do} for a bit.",
             "I want to {do} in peace.", "Time to {do}.", "I just {done}.",
             "I'll be {doing} for a while.", "Perfect time for {doing}.",
             "It helps when I'm {doing}.", "I'd like to be comfortable while I {do}.")


def context_remark(rng: random.Random, meta: SessionMeta) -> str:
    """A remark about the weather and time drawn from the session's meta."""
    when = meta.time_of_day
    clear_dark = meta.weather == "sunny" and meta.sun_phase != "daylight"
    weather = rng.choice(_CLEAR_DARK if clear_dark else _WEATHER[meta.weather])
    temp = rng.choice(_TEMP[meta.outdoor_temp])
    timed = "{period}" in weather + temp  # already says when: no 'this evening' after it
    weather, temp = weather.format(period=when), temp.format(period=when)
    cold, hot = meta.outdoor_temp in ("very cold", "cold"), meta.outdoor_temp == "hot"
    shapes = [f"{weather}, and {temp}", weather, f"{temp} and {weather}"]
    if not timed:
        shapes += [f"{weather} {_WHEN[when]}", f"{temp} {_WHEN[when]}"]
    if not clear_dark:
        adj = rng.choice(_WEATHER_ADJ[meta.weather])
        shapes.append(f"it's a {_TEMP_ADJ[meta.outdoor_temp]}, {adj} {when}")
        shapes.append(f"what a {adj} {when}")
    if cold or hot:
        shapes.append(f"{'Brr' if cold else 'Phew'}, {temp}")
    text = sentence(rng.choice(shapes))
    if rng.random() < 0.2:
        text += " " + rng.choice(_DAY[meta.day_of_week]).format(period=when)
    return text


def activity_remark(rng: random.Random, hobby: Hobby) -> str:
    return rng.choice(_ACTIVITY).format(do=hobby.do, doing=hobby.doing, done=hobby.done)


_REASONS = {
    "heat": ("It's a bit chilly in here.", "I need to warm up.", "My fingers are freezing.",
             "I can't stop shivering.", "The house feels like an icebox."),
    "cool": ("It's getting warm in here.", "It's stuffy in here.", "I'm sweating already.",
             "The room feels like an oven."),
    "auto": ("I just want it comfortable.", "The air feels a bit off.",
             "Let's keep the temperature steady."),
    "dim": ("It's too bright for this time of day.", "I want a cosy atmosphere.",
            "My eyes are tired.", "The light feels harsh right now."),
    "bright": ("I need to see what I'm doing.", "It's too dark in here.",
               "I need good light for this."),
    "tv": ("I want to watch something.", "I'm in the mood for a movie.",
           "There's a show I've been meaning to catch up on.", "I need some background noise."),
    "speaker": ("I'd like some background music.", "I need some tunes.",
                "Music helps me think.", "It's too quiet in here."),
    "security": ("I'm heading to bed soon.", "I'm heading out in a bit.",
                 "Better safe than sorry.", "I'm expecting a delivery later."),
}
_HOBBY_REASONS = ("I want it just right while I {do}.", "It should help while I'm {doing}.",
                  "I'm about to {do}.", "I need to focus on {doing}.", "I just {done}.",
                  "I'm going to {do} later.", "It's perfect for {doing}.")


def reason(rng: random.Random, device: str, values: Values, hobby: Hobby) -> str:
    """Why the user wants a device changed; never states a setting value."""
    if rng.random() < 0.6:
        return rng.choice(_HOBBY_REASONS).format(do=hobby.do, doing=hobby.doing, done=hobby.done)
    key = device
    if device == "ac":
        key = values.get("mode", "auto")
    elif device == "lights":
        key = "dim" if values.get("brightness", 50) <= 50 else "bright"
    return rng.choice(_REASONS[key])


_LABEL_ADJ = {"weather": {"rainy": "rainy", "snowy": "snowy", "sunny": "sunny", "cloudy": "grey"},
              "outdoor_temp": {"very cold": "freezing", "cold": "chilly", "mild": "mild",
                               "warm": "warm", "hot": "hot"},
              "day_of_week": {"weekday": "workday", "weekend": "weekend"}}


def routine_label(rng: random.Random, triggers: dict[str, str]) -> tuple[str, str]:
    """How a person names a routine: ('rainy', 'evening'), ('weekend', 'morning')."""
    adjectives = [_LABEL_ADJ[f][v] for f, v in triggers.items() if f in _LABEL_ADJ]
    return rng.choice(adjectives or ["everyday"]), triggers.get("time_of_day", "day")
