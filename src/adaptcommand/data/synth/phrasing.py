"""The user's side of a dialogue: how a person wraps a request in words.

A user turn is composed, not templated whole: opener x context remark (weather, time, day) x
request frame x device phrase x activity remark x closer, each drawn from banks. Each persona
keeps a personal phrasebook (a few openers, frames, answers and closers drawn from their
register's pool) so they sound consistent, and style transforms (exclamations, contractions, a
country drawl, slang tags) finish the text.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from adaptcommand.data.schema import SessionMeta
from adaptcommand.data.synth.devices import favourite
from adaptcommand.data.synth.lexicon import QUIRK_CLOSERS, QUIRK_OPENERS, Hobby


@dataclass(frozen=True)
class Style:
    register: str  # formal | neutral | casual
    verbosity: str  # terse | moderate | verbose
    quirk: str | None  # a key of lexicon.QUIRK_OPENERS
    exclaims: bool


@dataclass(frozen=True)
class Phrasebook:
    """The few ways one person opens, asks, answers and thanks."""

    openers: tuple[str, ...]
    frames: tuple[str, ...]
    answers: tuple[str, ...]
    closers: tuple[str, ...]


_OPENERS = {
    "formal": ("Good {period}.", "Hello.", "Good {period}, assistant.", "Hello there.",
               "Excuse me.", "Pardon me,"),
    "neutral": ("Hi.", "Hello!", "Hey there.", "Hi there.", "Hey assistant,", "Good {period}!",
                "Hey.", "{Period}."),
    "casual": ("Hey,", "Hey there!", "Hiya!", "Heya,", "Hey hey,", "What's up,", "{Period}!"),
}
_FRAMES = {
    "formal": ("Could you please {vp}?", "Would you kindly {vp}?", "I would like you to {vp}.",
               "Please {vp}.", "Could you {vp}, please?", "I'd be grateful if you could {vp}.",
               "Would you be so kind as to {vp}?", "May I ask you to {vp}?"),
    "neutral": ("Can you {vp}?", "Could you {vp}?", "Please {vp}.", "I'd like you to {vp}.",
                "Would you {vp}?", "Can you {vp} for me?", "Could you {vp} for me?",
                "Let's {vp}.", "I need you to {vp}."),
    "casual": ("Can you {vp}?", "{vp}.", "Go ahead and {vp}.", "Could ya {vp}?",
               "{vp}, would you?", "Can you {vp} real quick?", "How about you {vp}?",
               "Let's {vp}.", "{vp}, will ya?"),
    "terse": ("{vp}.", "{vp}, please.", "Please {vp}.", "{vp} now."),
}
_ANSWERS = {
    "formal": ("I would like {x}, please.", "{x}, if you would.", "Please set {it} to {x}.",
               "{x}, please.", "Let us go with {x}.", "I'd prefer {x}."),
    "neutral": ("Let's go with {x}.", "How about {x}?", "Set {it} to {x}, please.",
                "{x}, please.", "I'd like {it} at {x}.", "Make it {x}.", "Let's do {x}.",
                "{x} would be perfect."),
    "casual": ("Make it {x}.", "{x}.", "Let's go with {x}.", "Uh, {x}?", "Just do {x}.",
               "{x}, that's it.", "Go with {x}.", "Hmm, {x}."),
    "terse": ("{x}.", "Set {it} to {x}.", "{x}, please."),
}
_CLOSERS = {
    "formal": ("Thank you.", "Thank you very much.", "Much appreciated.", "Thank you kindly.",
               "Many thanks."),
    "neutral": ("Thanks.", "Thanks a lot.", "Thank you!", "Great, thanks.", "Thanks so much."),
    "casual": ("Thanks!", "Thanks a bunch.", "Sweet, thanks.", "Cool, thanks.", "Ta.",
               "Nice one."),
}
USUAL_ANSWERS = ("The usual, please.", "You know how I like it.", "Same as always.",
                 "However I normally have it.", "My usual settings, please.",
                 "Just the way I always have it.", "Like always.",
                 "Whatever I usually go with.", "The way I like it, you know.")
ACCEPTS = ("Yes, please.", "Sure, go ahead.", "Yes, that would be lovely.", "Yeah, do it.",
           "Please do.", "Absolutely.", "Yes.", "Sounds good, go for it.", "Oh yes, please.")
ALSO = ("Also,", "And", "Oh, and", "While you're at it,", "Plus,", "And also", "One more thing:",
        "Then")
REPLY_LEADS = ("Yes,", "Yeah,", "Actually,", "Yes, actually.", "Oh, and", "Now,", "Also,",
               "Hmm,", "Yes, one more thing.", "Right,")
FAREWELLS = ("Bye for now.", "See you later.", "Talk to you later.", "Catch you later.",
             "That's it from me.", "Okay, bye!")
DONE_REMARKS = ("That's all for now.", "That's everything.", "That's perfect.", "Looks good.",
                "That'll do.", "All set, I think.", "Nothing else for now.")

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


def make_phrasebook(rng: random.Random, style: Style) -> Phrasebook:
    """A person's own small selection from their register's pools (plus their quirk)."""
    frames_pool = _FRAMES["terse"] if style.verbosity == "terse" else _FRAMES[style.register]
    answers_pool = _ANSWERS["terse"] if style.verbosity == "terse" else _ANSWERS[style.register]
    openers = rng.sample(_OPENERS[style.register], 3)
    closers = rng.sample(_CLOSERS[style.register], 3)
    if style.quirk:
        openers += rng.sample(QUIRK_OPENERS[style.quirk], 2)
        closers += rng.sample(QUIRK_CLOSERS[style.quirk], 2)
    return Phrasebook(openers=tuple(openers), frames=tuple(rng.sample(frames_pool, 3)),
                      answers=tuple(rng.sample(answers_pool, 3)), closers=tuple(closers))


def sentence(text: str) -> str:
    """Capitalise the first letter and make sure the text ends a sentence."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?:" else text + "."


def lower_first(text: str) -> str:
    """Lower-case a sentence start so it can follow 'Also,'; keeps 'I' and 'AC', 'TV'."""
    first = text.split(" ", 1)[0]
    if first == "I" or first.startswith("I'") or (len(first) > 1 and first[1].isupper()):
        return text
    return text[0].lower() + text[1:]


def glue(parts: list[str]) -> str:
    """Join sentence pieces; a piece after 'Hey,' or 'And' continues the sentence."""
    text = ""
    for part in filter(None, parts):
        ended = not text or text.endswith((".", "!", "?"))
        text = f"{text} {part}" if ended else f"{text} {lower_first(part)}"
    return text.strip()


def opener(rng: random.Random, book: Phrasebook, meta: SessionMeta) -> str:
    when = "evening" if meta.time_of_day == "night" else meta.time_of_day
    return favourite(rng, book.openers).format(period=when, Period=when.capitalize())


def request(rng: random.Random, book: Phrasebook, vp: str) -> str:
    return sentence(favourite(rng, book.frames).format(vp=vp))


def answer(rng: random.Random, book: Phrasebook, listed: str, pronoun: str) -> str:
    return sentence(favourite(rng, book.answers).format(x=listed, it=pronoun))


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


def closer(rng: random.Random, book: Phrasebook) -> str:
    return favourite(rng, book.closers)


_CONTRACTIONS = (("it's", "it is"), ("I'm", "I am"), ("I'd", "I would"), ("can't", "cannot"),
                 ("don't", "do not"), ("that's", "that is"), ("I'll", "I will"))
_G_KEEP = frozenset({"thing", "bring", "spring", "string", "king", "ring", "sing", "wing"})
_SLANG_TAGS = {"slang": (", dude", ", man", ", bro"), "british": (", mate", ", love"),
               "drawl": (", partner",), "theatrical": (", darling",)}


def stylize(rng: random.Random, text: str, style: Style) -> str:
    """Apply the persona's habits to a finished user turn."""
    if style.register == "formal" and rng.random() < 0.5:
        for short, full in _CONTRACTIONS:
            text = re.sub(rf"\b{re.escape(short)}\b", full, text)
    if style.register == "casual" and rng.random() < 0.5:
        text = text.replace("going to ", "gonna ").replace("want to ", "wanna ")
    if style.quirk == "drawl":
        text = re.sub(r"\b(\w{3,})ing\b",
                      lambda m: m.group(0) if m.group(0).lower() in _G_KEEP else m.group(1) + "in'",
                      text)
        text = text.replace(" them", " 'em").replace("Can you", "Can ya")
    if style.quirk in _SLANG_TAGS and rng.random() < 0.35:
        text = re.sub(r"([.?!])$", rng.choice(_SLANG_TAGS[style.quirk]) + r"\1", text, count=1)
    if style.exclaims:
        text = re.sub(r"\.(\s|$)", lambda m: ("!" if rng.random() < 0.5 else ".") + m.group(1),
                      text)
    return text


_LABEL_ADJ = {"weather": {"rainy": "rainy", "snowy": "snowy", "sunny": "sunny", "cloudy": "grey"},
              "outdoor_temp": {"very cold": "freezing", "cold": "chilly", "mild": "mild",
                               "warm": "warm", "hot": "hot"},
              "day_of_week": {"weekday": "workday", "weekend": "weekend"}}


def routine_label(rng: random.Random, triggers: dict[str, str]) -> tuple[str, str]:
    """How a person names a routine: ('rainy', 'evening'), ('weekend', 'morning')."""
    adjectives = [_LABEL_ADJ[f][v] for f, v in triggers.items() if f in _LABEL_ADJ]
    return rng.choice(adjectives or ["everyday"]), triggers.get("time_of_day", "day")


def group_request(rng: random.Random, label: tuple[str, str], cosy: bool) -> str:
    """Asking for a whole routine by name, with no value in it."""
    adj, noun = label
    options = [f"set up my usual {adj}-{noun} routine", f"do my {adj}-{noun} setup",
               "get everything ready the way I like it", f"do the usual for a {adj} {noun}",
               f"run my {adj} {noun} routine", f"set things up like you always do on {adj} {noun}s",
               "set the house up the way I always have it"]
    if cosy:
        options.append("make it cosy like always")
    return rng.choice(options)


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


def reason(rng: random.Random, device: str, values: dict, hobby: Hobby) -> str:
    """Why the user wants a device changed; never states a setting value."""
    if rng.random() < 0.6:
        return rng.choice(_HOBBY_REASONS).format(do=hobby.do, doing=hobby.doing, done=hobby.done)
    key = device
    if device == "ac":
        key = values.get("mode", "auto")
    elif device == "lights":
        key = "dim" if values.get("brightness", 50) <= 50 else "bright"
    return rng.choice(_REASONS[key])
