"""Device vocabulary: how people and the assistant name devices and settings.

The forms follow the real sample ("set the AC to heat mode at 22 degrees with fan speed 1",
"lights to 40% brightness with a warm color", "speaker volume 30 with a balanced equalizer"), so
that an action extractor tuned on real text reads generated text too. Every settings phrase states
its values as the schema spells them (numbers as digits, enum words verbatim); value-free phrases
("the lights the way I like them") state none.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from adaptcommand.data.synth.sampling import favourite

Values = dict[str, Any]


class Name(NamedTuple):
    """A device's name in a sentence, with the pronoun that refers back to it."""

    noun: str
    pronoun: str
    plural: bool = False


NAMES: dict[str, tuple[Name, ...]] = {
    "ac": (Name("AC", "it"), Name("air conditioning", "it"), Name("thermostat", "it"),
           Name("air conditioner", "it")),
    "lights": (Name("lights", "them", True), Name("lamps", "them", True), Name("lighting", "it")),
    "tv": (Name("TV", "it"), Name("television", "it")),
    "speaker": (Name("speaker", "it"), Name("sound system", "it"), Name("smart speaker", "it")),
    "security": (Name("security system", "it"), Name("alarm system", "it"),
                 Name("home security", "it")),
}
SHORT: dict[str, str] = {"ac": "AC", "lights": "lights", "tv": "TV", "speaker": "speaker",
                         "security": "security system"}

PARAM_NOUNS: dict[tuple[str, str], str] = {
    ("ac", "temperature"): "temperature", ("ac", "mode"): "mode", ("ac", "fan_speed"): "fan speed",
    ("lights", "brightness"): "brightness", ("lights", "color"): "color",
    ("lights", "mode"): "mode", ("tv", "volume"): "volume", ("tv", "brightness"): "brightness",
    ("tv", "input_source"): "input source", ("speaker", "volume"): "volume",
    ("speaker", "equalizer"): "equalizer", ("security", "alarm_volume"): "alarm volume",
}

_ATTR: dict[tuple[str, str], tuple[str, ...]] = {
    ("ac", "temperature"): ("{v} degrees", "a temperature of {v} degrees",
                            "{v} degrees Celsius"),
    ("ac", "mode"): ("{v} mode", "the {v} setting"),
    ("ac", "fan_speed"): ("fan speed {v}", "fan speed at {v}", "fan level {v}"),
    ("lights", "brightness"): ("{v}% brightness", "brightness {v}",
                               "{v} brightness", "{v} percent brightness", "brightness at {v}%"),
    ("lights", "mode"): ("{v} mode", "the {v} setting"),
    ("tv", "volume"): ("volume {v}", "volume at {v}", "volume level {v}"),
    ("tv", "brightness"): ("brightness {v}", "brightness at {v}", "{v}% brightness"),
    ("speaker", "volume"): ("volume {v}", "volume at {v}", "{v}% volume"),
    ("speaker", "equalizer"): ("{v}", "{v} equalizer", "a {v} equalizer", "the {v} preset"),
    ("security", "alarm_volume"): ("alarm volume {v}", "alarm volume at {v}"),
}
_COLOR: dict[str, tuple[str, ...]] = {
    "warm": ("a warm color", "warm color", "warm white", "a warm tone", "warm light"),
    "cool": ("a cool color", "cool color", "cool white", "a cool tone", "cool light"),
    "neutral": ("a neutral color", "neutral color", "neutral white", "a neutral tone"),
}
_SOURCE: dict[str, tuple[str, ...]] = {
    "HDMI1": ("HDMI1", "input HDMI1", "the HDMI1 input"),
    "HDMI2": ("HDMI2", "input HDMI2", "the HDMI2 input"),
    "AV": ("AV", "the AV input"),
    "Netflix": ("Netflix",),
    "YouTube": ("YouTube",),
}

# verb -> (gerund, past participle), for turning a command into the assistant's report.
VERB_FORMS: dict[str, tuple[str, str]] = {
    "set": ("setting", "set"), "put": ("putting", "put"), "turn": ("turning", "turned"),
    "switch": ("switching", "switched"), "dim": ("dimming", "dimmed"),
    "brighten": ("brightening", "brightened"), "arm": ("arming", "armed"),
    "disarm": ("disarming", "disarmed"), "change": ("changing", "changed"),
    "adjust": ("adjusting", "adjusted"), "bring": ("bringing", "brought"),
}


class Clause(NamedTuple):
    """A command split as verb + rest, so one phrase serves every tense."""

    verb: str
    rest: str

    def imperative(self) -> str:
        return f"{self.verb} {self.rest}"

    def gerund(self) -> str:
        return f"{VERB_FORMS[self.verb][0]} {self.rest}"

    def perfect(self) -> str:
        return f"{VERB_FORMS[self.verb][1]} {self.rest}"


def attr(rng: random.Random, device: str, param: str, value: Any) -> str:
    """One setting as a noun phrase: '22 degrees', 'heat mode', 'a warm color'."""
    if param == "color":
        return favourite(rng, _COLOR[value])
    if param == "input_source":
        return favourite(rng, _SOURCE[value])
    if param == "armed":
        return "armed" if value else "disarmed"
    return favourite(rng, _ATTR[device, param]).format(v=value)


def assign(rng: random.Random, device: str, param: str, value: Any) -> str:
    """One setting as 'noun to value': 'the fan speed to 2', 'the color to warm'."""
    noun = PARAM_NOUNS[device, param]
    if param == "input_source":
        noun = rng.choice(("input", "input source"))
    shown = f"{value}%" if param == "brightness" and rng.random() < 0.3 else value
    return f"the {noun} to {shown}"


def join(rng: random.Random, parts: list[str]) -> str:
    """'a', 'a and b', 'a, b, and c' or 'a with b and c': the list shapes of the sample."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return rng.choice(("{0} and {1}", "{0} with {1}", "{0}, {1}")).format(*parts)
    head, last = ", ".join(parts[:-1]), parts[-1]
    shape = rng.choice(("oxford", "plain", "with"))
    if shape == "with":
        return f"{parts[0]} with {join_and(parts[1:])}"
    return f"{head}, and {last}" if shape == "oxford" else f"{head} and {last}"


def attrs(rng: random.Random, device: str, values: Values, plain: bool = False) -> str:
    """All of a device's settings as one list phrase, in a random order; `plain` avoids 'with'
    for lists that follow a 'with' already."""
    params = [p for p in values if p != "armed"]
    if rng.random() < 0.2:
        rng.shuffle(params)
    parts = [attr(rng, device, p, values[p]) for p in params]
    return join_and(parts) if plain else join(rng, parts)


def command(rng: random.Random, device: str, values: Values, name: Name) -> Clause:
    """An imperative that states every value in `values` for one device."""
    the = f"the {name.noun}"
    if device == "security":
        return _security_command(rng, values, the)
    if device == "lights" and "brightness" in values and rng.random() < 0.5:
        level = values["brightness"]
        verb = "dim" if level <= 40 else "brighten" if level >= 80 else rng.choice(("set", "turn"))
        if verb == "turn":
            return Clause("turn", f"on {the} to {attrs(rng, device, values)}")
        return Clause(verb, f"{the} to {attrs(rng, device, values)}")
    if device == "tv" and "input_source" in values and rng.random() < 0.5:
        rest = {k: v for k, v in values.items() if k != "input_source"}
        source = rng.choice(_SOURCE[values["input_source"]])
        tail = f" with {attrs(rng, device, rest, plain=True)}" if rest else ""
        verb = rng.choice(("switch", "put", "set"))
        return Clause(verb, f"{the} {'on' if verb == 'put' else 'to'} {source}{tail}")
    if len(values) >= 2 and rng.random() < 0.3:
        settings = [assign(rng, device, p, v) for p, v in values.items()]
        settings = [settings[0]] + [s.removeprefix("the ") for s in settings[1:]]
        return Clause("set", f"{the} {join_and(settings).removeprefix('the ')}")
    return Clause(favourite(rng, ("set", "adjust", "change", "bring")),
                  f"{the} to {attrs(rng, device, values)}")


def _security_command(rng: random.Random, values: Values, the: str) -> Clause:
    alarm = values.get("alarm_volume")
    if "armed" not in values:
        return Clause("set", f"the alarm volume to {alarm}")
    tail = f" with {attr(rng, 'security', 'alarm_volume', alarm)}" if alarm is not None else ""
    return Clause("arm" if values["armed"] else "disarm", f"{the}{tail}")


def state(rng: random.Random, device: str, values: Values, name: Name) -> str:
    """The assistant's report of settings now in force: 'The AC is now set to 22 degrees...'."""
    the = f"the {name.noun}"
    be = "are" if name.plural else "is"
    if device == "security" and "armed" in values:
        head = f"{the} {be} now {'armed' if values['armed'] else 'disarmed'}"
        alarm = values.get("alarm_volume")
        return head + (f", with the alarm volume at {alarm}" if alarm is not None else "")
    shape = rng.choice(("now", "been", "bare", "at"))
    listed = attrs(rng, device, values)
    if shape == "now":
        return f"{the} {be} now set to {listed}"
    if shape == "been":
        return f"{the} {'have' if name.plural else 'has'} been set to {listed}"
    if shape == "at":
        return f"{the} {be} at {listed}"
    return f"{name.noun} set to {listed}"


def question(rng: random.Random, device: str, params: list[str], name: Name) -> str:
    """A clarifying question asking for `params` of one device."""
    nouns = [PARAM_NOUNS[device, p] for p in params if p != "armed"] or ["settings"]
    listed = join_and(nouns)
    the = f"the {name.noun}"
    if len(nouns) == 1 and rng.random() < 0.35:
        return favourite(rng, (f"Would you like me to adjust the {listed} as well?",
                           f"Should I change the {listed} too?",
                           f"Do you want a specific {listed}?"))
    return favourite(rng, (
        f"What {listed} would you like for {the}?",
        f"What {listed} would you like me to set {the} to?",
        f"What {listed} would you like?",
        f"What {listed} would you like me to set {name.pronoun} to?",
        f"Please specify the {listed}.",
        f"Which {listed} would you prefer?",
        f"What {listed} should I use?",
    ))


def join_and(words: list[str]) -> str:
    """'a', 'a and b', 'a, b, and c' without random shapes (for questions and summaries)."""
    if len(words) <= 2:
        return " and ".join(words)
    return ", ".join(words[:-1]) + ", and " + words[-1]


def vague(rng: random.Random, device: str, values: Values, name: Name) -> str:
    """A request for the device with no value in it: 'turn up the heat a bit'."""
    the = f"the {name.noun}"
    options = [f"adjust {the}", f"do something about {the}", f"sort out {the}"]
    mode, level = values.get("mode"), values.get("brightness")
    if device == "ac":
        options += {"heat": ["turn up the heat a bit", "warm the place up",
                             "take the chill off the room"],
                    "cool": ["cool things down", f"turn on {the}", "cool the room down a little"],
                    }.get(mode, [f"turn on {the}", "make the temperature comfortable"])
    elif device == "lights":
        options += (["dim the lights a bit", f"make {the} softer", f"turn {the} down"]
                    if level is not None and level <= 50 else
                    [f"turn on {the}", "brighten things up", f"turn {the} up a bit"])
    elif device == "tv":
        options += [f"turn on {the}", f"set up {the}", f"get {the} going",
                    "put something on the TV"]
    elif device == "speaker":
        options += [f"turn on {the}", "put some music on", f"get {the} going",
                    f"play something on {the}"]
    else:
        options += [f"check {the}", f"set up {the} for me"]
    return rng.choice(options)


def usual(rng: random.Random, name: Name) -> str:
    """A request for a device's habitual settings that states no value."""
    the, it = f"the {name.noun}", name.pronoun
    return rng.choice((
        f"set {the} the way I like {it}", f"put {the} on my usual settings",
        f"set {the} like usual", f"set up {the} how I normally have {it}",
        f"do {the} the usual way", f"get {the} sorted like always",
        f"set {the} to my usual", f"give me my usual {name.noun} settings",
    ))


GENRES = ("jazz", "classical music", "lo-fi beats", "folk music", "some old rock",
          "ambient sounds", "bird songs", "a podcast", "eighties hits", "soft piano")


def switch(rng: random.Random, device: str, on: bool, name: Name) -> str:
    """Switching a device on or off (or starting music): a request without schema values."""
    the = f"the {name.noun}"
    if device == "speaker" and on:
        genre = rng.choice(GENRES)
        return rng.choice((f"play {genre} on {the}", f"put on {genre}", f"turn on {the}"))
    word = "on" if on else "off"
    return rng.choice((f"turn {word} {the}", f"switch {word} {the}", f"turn {the} {word}"))
