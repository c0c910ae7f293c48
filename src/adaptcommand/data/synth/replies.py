"""The assistant's side of a dialogue: acknowledgements, reports of applied settings,
clarifying questions, offers and sign-offs.

Reports always spell out every value applied ("I'll set the AC to heat mode at 22 degrees with
fan speed 1"), also when the user only said "the usual": this is where knowledge of the user's
routines shows in the text.
"""

from __future__ import annotations

import random
import re

from adaptcommand.data.schema import SessionMeta
from adaptcommand.data.synth import devices
from adaptcommand.data.synth.devices import Name, Values
from adaptcommand.data.synth.lexicon import Hobby
from adaptcommand.data.synth.phrasing import sentence
from adaptcommand.data.synth.sampling import favourite

ACKS = ("Of course.", "Sure.", "Got it.", "Certainly.", "Understood.", "Absolutely.",
        "No problem.", "Right away.", "Sure thing.", "Okay.", "Will do.", "Alright.")
# How often real replies open with each (real sample: 28, 26, 19, 16, 11 of 102 acknowledgements
# for the first five): spread, so that no one opener ('Sure.') dominates what a model starts with.
ACK_WEIGHTS = (28, 26, 19, 16, 11, 1, 1, 1, 1, 1, 1, 1)
NAMED_ACKS = ("Of course, {name}.", "Sure thing, {name}.", "Certainly, {name}.",
              "Got it, {name}.", "Right away, {name}.")
FOLLOW_UPS = ("Is there anything else you'd like me to adjust?", "Anything else?",
              "Anything else you'd like to change?", "Would you like me to adjust anything else?",
              "Let me know if you need anything else.", "How else can I help?", "Anything more?",
              "Is there anything else I can do for you?")
OPENING_OFFERS = ("How can I help you today?", "What can I do for you?",
                  "Anything I can set up for you?", "What would you like me to adjust?")
ENDINGS = ("Enjoy your {period}!", "Enjoy {doing}!", "Have a lovely {period}.",
           "Have fun {doing}!", "Hope that's comfortable.", "Enjoy!",
           "Let me know if you need anything else.", "Have a good one.")
CHAT_REPLIES = {
    "hobby": ("That sounds lovely.", "Sounds like a great way to spend the {period}.",
              "Nice! Enjoy it.", "Glad to hear it.", "That sounds fun.", "How nice.",
              "Good for you!", "Sounds relaxing.", "Enjoy {doing}!", "I hope it goes well."),
    "home": ("Sounds like a lively home!", "Ha, never a dull moment.", "Thanks for the update.",
             "That made me smile.", "Home sweet home."),
    "weather": ("It does look {weather} out there.", "Sounds like a good {period} to stay in.",
                "Thanks for the weather report!", "Let's keep it comfortable inside, then.",
                "I'll keep that in mind.", "Good thing you're indoors."),
}
THANKS_REPLIES = ("You're welcome!", "My pleasure.", "Anytime.", "Glad I could help.",
                  "Happy to help.", "You're very welcome.", "No problem at all.")
MEMORY_SUFFIXES = (", as usual", ", just the way you like it", ", like you usually have it",
                   ", same as always", ", like every {period}", ", your usual settings")
MEMORY_PREFIXES = ("Your usual {label} setup, coming up.", "Just the way you like it.",
                   "Same as always.", "I remember how you like it.", "The usual, then.",
                   "Setting things up for a {label2} like always.")


def ack(rng: random.Random, first_name: str) -> str:
    if rng.random() < 0.15:
        return rng.choice(NAMED_ACKS).format(name=first_name)
    return rng.choices(ACKS, weights=ACK_WEIGHTS)[0]


def report(rng: random.Random, device: str, values: Values, name: Name) -> str:
    """One applied device as a clause without final punctuation, every value stated."""
    shape = favourite(rng, ("gerund", "state", "future", "perfect"))
    if shape == "state":
        return devices.state(rng, device, values, name)
    clause = devices.command(rng, device, values, name)
    if shape == "future":
        return f"I'll {clause.imperative()}"
    return f"I've {clause.perfect()}" if shape == "perfect" else clause.gerund()


def reports(rng: random.Random, applied: list[tuple[str, Values, Name]], memory: str) -> str:
    """Sentences for every device applied in one turn; `memory` (a suffix) marks values that
    came from the user's habits rather than from their words."""
    if len(applied) == 2 and rng.random() < 0.4:
        first, second = (devices.command(rng, *item).gerund() for item in applied)
        return sentence(f"{first} and {second}{memory}")
    clauses = [report(rng, device, values, name) for device, values, name in applied]
    return " ".join(sentence(c + (memory if i == len(clauses) - 1 else ""))
                    for i, c in enumerate(clauses))


def memory_prefix(rng: random.Random, label: tuple[str, str]) -> str:
    return rng.choice(MEMORY_PREFIXES).format(label=f"{label[0]}-{label[1]}",
                                              label2=f"{label[0]} {label[1]}")


def memory_suffix(rng: random.Random, time_of_day: str) -> str:
    return rng.choice(MEMORY_SUFFIXES).format(period=time_of_day)


def switch_report(rng: random.Random, device: str, on: bool, name: Name) -> str:
    """A device switched on or off, or music started: no schema value to state."""
    the = f"the {name.noun}"
    if device == "speaker" and on:
        return sentence(rng.choice((f"Playing some music on {the}", f"{the} is now playing",
                                    f"I've started some music on {the}")))
    word = "on" if on else "off"
    have, be = ("have", "are") if name.plural else ("has", "is")
    return sentence(rng.choice((f"{the} {have} been turned {word}", f"Turning {word} {the}",
                                f"I've turned {word} {the}", f"{the} {be} now {word}")))


def offer(rng: random.Random, device: str, values: Values, name: Name) -> str:
    """The assistant proposing a routine device the user has not mentioned yet."""
    the = f"the {name.noun}"
    if rng.random() < 0.5:
        clause = devices.command(rng, device, values, name)
        return f"Shall I also {clause.imperative()}, like usual?"
    return rng.choice((
        f"Would you like me to set {the} the way you usually have {name.pronoun} too?",
        f"Shall I also set up {the} like usual?",
        f"Should I do {the} as well, like always?",
    ))


def yours(text: str) -> str:
    """The user's words about themselves, as the assistant says them back."""
    return re.sub(r"\bmy\b", "your", text)


def ending(rng: random.Random, time_of_day: str, hobby: Hobby) -> str:
    return rng.choice(ENDINGS).format(period=time_of_day, doing=yours(hobby.doing))


def chat_reply(rng: random.Random, topic: str, meta: SessionMeta, hobby: Hobby) -> str:
    """A friendly answer to small talk about the user's hobby or the weather."""
    weather = {"sunny": "bright", "cloudy": "grey", "rainy": "wet", "snowy": "snowy"}[meta.weather]
    return rng.choice(CHAT_REPLIES[topic]).format(period=meta.time_of_day,
                                                  doing=yours(hobby.doing), weather=weather)
