"""The user's side of a dialogue: how a person wraps a request in words.

A user turn is composed, not templated whole: opener x remark (`remarks`) x request frame x
device phrase (`devices`) x reason x closer, each drawn from banks. Each persona keeps a personal
phrasebook (a few openers, frames, answers and closers drawn from their register's pool, the
first a favourite) so they sound consistent, and style transforms (exclamations, contractions, a
country drawl, slang tags) finish the text.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from adaptcommand.data.schema import SessionMeta
from adaptcommand.data.synth.lexicon import QUIRK_CLOSERS, QUIRK_OPENERS
from adaptcommand.data.synth.sampling import favourite


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
    "terse": ("{vp}.", "{vp}, please.", "Please {vp}.", "{vp}, thanks."),
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


def request(rng: random.Random, book: Phrasebook, vp: str, first: bool = True) -> str:
    """A request in the person's words; a further request in the same turn varies the frame
    (or drops it) instead of repeating the favourite."""
    frame = favourite(rng, book.frames) if first else rng.choice((*book.frames, "{vp}."))
    return sentence(frame.format(vp=vp))


def answer(rng: random.Random, book: Phrasebook, listed: str, pronoun: str) -> str:
    return sentence(favourite(rng, book.answers).format(x=listed, it=pronoun))


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
