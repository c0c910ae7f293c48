"""Characters: who each user is and how they talk.

A persona's style (register, verbosity, a speech quirk, exclamation habit) and personal
phrasebook shape every message they write, so a user's sessions sound like one person and
different users sound different. `character_text` is the `characters.jsonl` sketch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from adaptcommand.data.synth.lexicon import (
    FEMALE_NAMES,
    HOBBIES,
    HOMES,
    MALE_NAMES,
    OCCUPATIONS,
    QUIRK_DESCRIPTIONS,
    QUIRKS,
    SURNAMES,
    Hobby,
    Home,
)
from adaptcommand.data.synth.phrasing import Phrasebook, Style, make_phrasebook


@dataclass(frozen=True)
class Persona:
    first: str
    surname: str
    pronoun: str  # she | he
    age: int
    occupation: str
    home: Home
    hobbies: tuple[Hobby, ...]
    style: Style
    book: Phrasebook


def make_persona(rng: random.Random) -> Persona:
    pronoun = rng.choice(("she", "he"))
    quirk = rng.choice(QUIRKS) if rng.random() < 0.4 else None
    style = Style(
        register=rng.choices(("formal", "neutral", "casual"), weights=(0.3, 0.4, 0.3))[0],
        verbosity=rng.choices(("terse", "moderate", "verbose"), weights=(0.2, 0.45, 0.35))[0],
        quirk=quirk,
        exclaims=quirk == "bubbly" or rng.random() < 0.25,
    )
    return Persona(
        first=rng.choice(FEMALE_NAMES if pronoun == "she" else MALE_NAMES),
        surname=rng.choice(SURNAMES), pronoun=pronoun, age=rng.randint(19, 84),
        occupation=rng.choice(OCCUPATIONS), home=rng.choice(HOMES),
        hobbies=tuple(rng.sample(HOBBIES, rng.randint(1, 3))), style=style,
        book=make_phrasebook(rng, style),
    )


def article(word: str) -> str:
    """'a' or 'an' as the word is spoken ('an 18-year-old', 'an opera singer')."""
    return "an" if word[0] in "aeiouAEIOU8" else "a"


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _style_sentence(rng: random.Random, p: Persona) -> str:
    pron, poss = p.pronoun.capitalize(), "her" if p.pronoun == "she" else "his"
    s = p.style
    register = {
        "formal": ("speaks formally and always says please and thank you",
                   "is unfailingly polite and rather formal"),
        "neutral": ("speaks in a friendly, plain way", "is straightforward and friendly"),
        "casual": ("keeps things casual and relaxed", "talks in a laid-back, casual way"),
    }[s.register]
    verbosity = {
        "terse": ("keeps requests short and to the point", "rarely wastes a word"),
        "moderate": (f"says what {p.pronoun} needs without fuss",),
        "verbose": (f"likes to chat about the weather and whatever {p.pronoun} is doing",
                    f"tends to explain why {p.pronoun} wants something",
                    f"fills {poss} requests with little stories"),
    }[s.verbosity]
    traits = [rng.choice(register), rng.choice(verbosity)]
    if s.quirk:
        traits.append(QUIRK_DESCRIPTIONS[s.quirk])
    if s.exclaims and s.quirk != "bubbly":
        traits.append("often sounds excited")
    return f"{pron} {', '.join(traits[:-1])} and {traits[-1]}."


def character_text(rng: random.Random, p: Persona) -> str:
    """The personality sketch of `characters.jsonl`: name, job, home, hobbies, way of talking."""
    full = f"{p.first} {p.surname}"
    pron, poss = p.pronoun.capitalize(), "her" if p.pronoun == "she" else "his"
    hobbies = _listing([h.noun for h in p.hobbies])
    aged = f"{article(str(p.age))} {p.age}-year-old"
    job = f"{article(p.occupation)} {p.occupation}"
    home = p.home.description
    intro = rng.choice((
        f"{full} is {aged} {p.occupation} who {home}. {pron} loves {hobbies}.",
        f"{full}, {p.age}, is {job}. {pron} {home} and spends {poss} spare time on {hobbies}.",
        f"{aged.capitalize()} {p.occupation}, {full} {home}. Favourite pastimes: {hobbies}.",
        f"{full} ({p.age}) is {job} who {home}. {pron} is passionate about {hobbies}.",
    ))
    return f"{intro} {_style_sentence(rng, p)}"
