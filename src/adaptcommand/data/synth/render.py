"""Turn a dialogue plan into messages, in the persona's voice and the assistant's."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from adaptcommand.data.schema import Message, SessionMeta
from adaptcommand.data.synth import devices, replies
from adaptcommand.data.synth.config import SynthConfig
from adaptcommand.data.synth.devices import Name, Values
from adaptcommand.data.synth.dialogue import Beat, Task
from adaptcommand.data.synth.imperfections import direction
from adaptcommand.data.synth.lexicon import Hobby
from adaptcommand.data.synth.personas import Persona
from adaptcommand.data.synth.phrasing import (
    ACCEPTS,
    ALSO,
    DONE_REMARKS,
    FAREWELLS,
    REPLY_LEADS,
    USUAL_ANSWERS,
    answer,
    closer,
    glue,
    group_request,
    opener,
    request,
    sentence,
    stylize,
)
from adaptcommand.data.synth.remarks import activity_remark, context_remark, reason
from adaptcommand.data.synth.sampling import favourite

P_OPENER = {"terse": 0.15, "moderate": 0.5, "verbose": 0.75}
P_CONTEXT = {"terse": 0.1, "moderate": 0.45, "verbose": 0.85}
P_ACTIVITY = {"terse": 0.05, "moderate": 0.2, "verbose": 0.4}
P_REASON = {"terse": 0.1, "moderate": 0.3, "verbose": 0.5}
P_CLOSER = {"formal": 0.35, "neutral": 0.2, "casual": 0.15}
SMALL_TALK = ("How's your day going?", "Just thought I'd mention it.", "It's been a good day.",
              "I'm in a great mood.", "Anyway.")
QUERIES = ("What {be} the {n} set to now?", "Can you remind me what the {n} {be} at?",
           "What are the {n} settings right now?", "Remind me, how {be} the {n} set?",
           "What did you set the {n} to?")
CHECKS = ("Is everything set?", "Is that all done?", "So is everything ready?",
          "Did that all go through?", "Everything good to go?")
REVISION_LEADS = ("Actually,", "On second thought,", "Hmm, actually,", "Wait,", "Oh, actually,",
                  "You know what,")
CAN_HELP = ("I can adjust the {n} for you.", "I can help with that.",
            "Happy to help with the {n}.")


@dataclass
class Scene:
    """Everything one session's wording depends on, plus what has been applied so far."""

    rng: random.Random
    persona: Persona
    meta: SessionMeta
    tasks: list[Task]
    names: list[Name]
    hobby: Hobby
    label: tuple[str, str] | None  # the routine's name in the user's words; None: spontaneous
    group: bool = False
    done: list[int] = field(default_factory=list)
    topic: int | None = None  # the task a query beat asks about
    asked: list[int] = field(default_factory=list)  # tasks the user has asked about
    chat_topic: str = "hobby"  # what the last small talk was about
    remarked: bool = False  # whether the user has mentioned their activity yet
    revised: set[int] = field(default_factory=set)  # tasks whose decoy value was corrected
    config: SynthConfig = field(default_factory=SynthConfig)  # the assistant's wording habits

    def shown(self, t: int) -> Values:
        """Task t's values as applied so far: its decoy until the user has corrected it."""
        task = self.tasks[t]
        return task.values if t in self.revised else {**task.values, **task.decoy}

    def from_memory(self, t: int) -> bool:
        """The assistant applies values the user did not say: it knows their routine."""
        task = self.tasks[t]
        return self.label is not None and task.stated() != set(task.values)

    def reportable(self) -> list[int]:
        return [t for t in self.done if self.tasks[t].values]

    def unasked(self) -> list[int]:
        return [t for t in self.reportable() if t not in self.asked]


def render(scene: Scene, beats: list[Beat], trailing: bool) -> list[Message]:
    """Alternating user/assistant messages, plus a closing user line when `trailing`."""
    messages = []
    for i, beat in enumerate(beats):
        following = beats[i + 1] if i + 1 < len(beats) else None
        messages.append(Message(role="user", text=_user_turn(scene, i, beat)))
        messages.append(Message(role="assistant", text=_assistant_turn(scene, beat, following)))
    if trailing:
        after_thanks = bool(beats) and beats[-1].kind == "thanks"
        messages.append(Message(role="user", text=_closing(scene, after_thanks)))
    return messages


def _user_turn(s: Scene, i: int, beat: Beat) -> str:
    rng, style = s.rng, s.persona.style
    parts = []
    if i == 0 and rng.random() < P_OPENER[style.verbosity]:
        parts.append(opener(rng, s.persona.book, s.meta))
    if i == 0 and rng.random() < P_CONTEXT[style.verbosity]:
        parts.append(context_remark(rng, s.meta) if rng.random() < 0.8
                     else rng.choice(s.persona.home.remarks))
    if beat.kind == "task":
        parts += _requests(s, i, beat)
    elif beat.kind == "revise":
        parts.append(_revision(s, beat.items[0][0]))
    elif beat.kind == "query" and s.unasked():
        s.topic = rng.choice(s.unasked())
        s.asked.append(s.topic)
        name = s.names[s.topic]
        parts.append(rng.choice(QUERIES).format(n=name.noun, be="are" if name.plural else "is"))
    elif beat.kind == "check":
        parts.append(rng.choice(CHECKS))
    elif beat.kind == "thanks":
        parts += [rng.choice(DONE_REMARKS)] * (rng.random() < 0.5) + [closer(rng, s.persona.book)]
    else:
        parts.append(_small_talk(s))
        parts += [rng.choice(SMALL_TALK)] * (rng.random() < 0.3)
    return stylize(rng, glue(parts), style)


def _revision(s: Scene, t: int) -> str:
    """The user changing an applied value: a correction, or a one-day change to the usual."""
    rng, task, name = s.rng, s.tasks[t], s.names[t]
    param = next(iter(task.decoy))
    new = {param: task.values[param]}
    when = (" tonight" if s.meta.time_of_day == "night" else " today") if task.for_today else ""
    command = devices.command(rng, task.device, new, name).imperative()
    way = direction(param, task.decoy[param], new[param])
    if way is not None and rng.random() < 0.5:
        return glue([rng.choice(REVISION_LEADS), f"I'd like the {name.noun} a bit {way}{when}.",
                     sentence(command)])
    return glue([rng.choice(REVISION_LEADS), sentence(f"{command}{when} instead")])


def _small_talk(s: Scene) -> str:
    """A remark about the user's hobby, the weather or their home (remembered for the reply)."""
    s.chat_topic = s.rng.choice(("hobby", "weather", "home"))
    if s.chat_topic == "hobby":
        return activity_remark(s.rng, s.hobby)
    if s.chat_topic == "weather":
        return context_remark(s.rng, s.meta)
    return s.rng.choice(s.persona.home.remarks)


def _requests(s: Scene, i: int, beat: Beat) -> list[str]:
    rng, book = s.rng, s.persona.book
    t, c = beat.items[0]
    if s.group:
        cosy = any(task.values.get("mode") == "heat" or task.values.get("color") == "warm"
                   for task in s.tasks)
        said = [request(rng, book, group_request(rng, s.label, cosy))]
    else:
        said = [sentence for k, item in enumerate(beat.items) for sentence in _item(s, k, *item)]
    if i > 0 and c == 0 and s.tasks[t].chunks[0].kind != "yes" and rng.random() < 0.45:
        said[0] = glue([rng.choice(REPLY_LEADS), said[0]])
    if not s.remarked and rng.random() < P_ACTIVITY[s.persona.style.verbosity]:
        s.remarked = True
        remark = activity_remark(rng, s.hobby)
        said = [remark, *said] if i == 0 and rng.random() < 0.4 else [*said, remark]
    if rng.random() < P_CLOSER[s.persona.style.register]:
        said.append(closer(rng, book))
    return said


def _item(s: Scene, k: int, t: int, c: int) -> list[str]:
    """The k-th request of a turn, linked to the one before, maybe with a reason."""
    rng, task = s.rng, s.tasks[t]
    said = [_chunk(s, t, c, first=k == 0)]
    if k > 0 and rng.random() < 0.75:
        said[0] = glue([rng.choice(ALSO), said[0]])
    chance = P_REASON[s.persona.style.verbosity] * (0.4 if c > 0 else 1.0)
    if task.chunks[c].kind != "yes" and rng.random() < chance:
        said.append(reason(rng, task.device, task.values, s.hobby))
    return said


def _chunk(s: Scene, t: int, c: int, first: bool) -> str:
    """What the user says for one chunk of one task (`first`: the turn's first request)."""
    rng, book = s.rng, s.persona.book
    task, name = s.tasks[t], s.names[t]
    chunk = task.chunks[c]
    if chunk.kind == "yes":
        return rng.choice(ACCEPTS)
    if chunk.kind == "usual" and c > 0:
        return rng.choice(USUAL_ANSWERS)
    if chunk.kind == "state" and c > 0:
        values = {p: s.shown(t)[p] for p in chunk.params}
        return answer(rng, book, devices.attrs(rng, task.device, values), name.pronoun)
    if chunk.kind == "usual":
        vp = devices.usual(rng, name)
    elif chunk.kind == "vague":
        vp = devices.vague(rng, task.device, task.values, name)
    elif chunk.kind == "switch":
        vp = devices.switch(rng, task.device, task.on, name)
    else:
        values = {p: s.shown(t)[p] for p in chunk.params}
        vp = devices.command(rng, task.device, values, name).imperative()
    return request(rng, book, vp, first)


def _assistant_turn(s: Scene, beat: Beat, following: Beat | None) -> str:
    rng = s.rng
    asked = False
    if beat.kind == "task":
        parts, asked = _apply(s, beat)
    elif beat.kind == "revise":
        t = beat.items[0][0]
        s.revised.add(t)
        task = s.tasks[t]
        parts = _acknowledged(s, [sentence(replies.report(
            rng, task.device, {p: task.values[p] for p in task.decoy}, s.names[t]))], True)
    elif beat.kind == "query" and s.topic is not None:
        task, name = s.tasks[s.topic], s.names[s.topic]
        parts = [sentence(devices.state(rng, task.device, s.shown(s.topic), name))]
        s.topic = None
    elif beat.kind == "check":
        parts = [rng.choice(("Yes, everything is set.", "Yes, all done.", "All set."))]
        parts += [sentence(devices.state(rng, s.tasks[t].device, s.shown(t), s.names[t]))
                  for t in s.reportable()]
    elif beat.kind == "thanks":
        parts = [rng.choice(replies.THANKS_REPLIES)]
        parts += [replies.ending(rng, s.meta.time_of_day, s.hobby)] * (rng.random() < 0.5)
    else:
        parts = [replies.chat_reply(rng, s.chat_topic, s.meta, s.hobby)]
    if not asked:
        parts += _look_ahead(s, beat, following)
    return " ".join(parts)


def _apply(s: Scene, beat: Beat) -> tuple[list[str], bool]:
    """Report every task finished in this turn; ask about the one still open, if any."""
    rng = s.rng
    parts = []
    finished = [t for t, c in beat.items if s.tasks[t].final(c)]
    if s.group and rng.random() < 0.8:
        parts.append(replies.memory_prefix(rng, s.label))
    applied = []
    for t in finished:
        task = s.tasks[t]
        if task.chunks[0].kind == "switch":
            parts.append(replies.switch_report(rng, task.device, task.on, s.names[t]))
        else:
            applied.append(t)
    if applied:
        remembered = not s.group and any(s.from_memory(t) for t in applied)
        memory = (replies.memory_suffix(rng, s.meta.time_of_day)
                  if remembered and rng.random() < 0.7 else "")
        parts.append(replies.reports(
            rng, [(s.tasks[t].device, s.shown(t), s.names[t]) for t in applied], memory))
    s.done += finished
    t, c = beat.items[-1]
    asked = not s.tasks[t].final(c)
    reported = bool(parts)
    if asked:
        question, partial = _clarify(s, t, c)
        parts += question
        reported = reported or partial
    return _acknowledged(s, parts, reported), asked


def _acknowledged(s: Scene, parts: list[str], reported: bool) -> list[str]:
    """`parts` opened with 'Sure.' and the like as often as real replies of their kind are:
    rarely when they report settings, mostly when they only ask (`SynthConfig.ack_*`)."""
    share = s.config.ack_before_report if reported else s.config.ack_before_question
    return [replies.ack(s.rng, s.persona.first)] * (s.rng.random() < share) + parts


def _clarify(s: Scene, t: int, c: int) -> tuple[list[str], bool]:
    """The question for task t's next values, after the values just stated (sometimes);
    whether it reports any."""
    rng, task, name = s.rng, s.tasks[t], s.names[t]
    chunk, following = task.chunks[c], task.chunks[c + 1]
    parts = []
    reported = chunk.kind == "state" and rng.random() < 0.4
    if reported:
        partial = {p: s.shown(t)[p] for p in chunk.params}
        parts.append(sentence(replies.report(rng, task.device, partial, name)))
    elif chunk.kind == "vague" and rng.random() < 0.3:
        parts.append(rng.choice(CAN_HELP).format(n=name.noun))
    said = {p for k in task.chunks[: c + 1] if k.kind == "state" for p in k.params}
    wanted = (list(following.params) if following.kind == "state"
              else [p for p in task.values if p not in said])
    parts.append(devices.question(rng, task.device, wanted, name))
    return parts, reported


def _look_ahead(s: Scene, beat: Beat, following: Beat | None) -> list[str]:
    """A follow-up that leads into the next turn: an offer, 'anything else?', or a goodbye."""
    rng = s.rng
    if following is None:
        if beat.kind != "thanks" and rng.random() < 0.35:
            return [replies.ending(rng, s.meta.time_of_day, s.hobby)]
        return []
    if following.kind == "task":
        t, c = following.items[0]
        task = s.tasks[t]
        if task.chunks[c].kind == "yes":
            return [replies.offer(rng, task.device, s.shown(t), s.names[t])]
    if rng.random() >= 0.6:
        return []
    return [favourite(rng, replies.FOLLOW_UPS if s.done else replies.OPENING_OFFERS)]


def _closing(s: Scene, after_thanks: bool) -> str:
    """The user's last word when the session ends on their turn."""
    rng = s.rng
    if after_thanks:
        return stylize(rng, rng.choice(FAREWELLS), s.persona.style)
    shape, text = rng.randrange(3), closer(rng, s.persona.book)
    if shape == 1:
        text = f"{rng.choice(DONE_REMARKS)} {text}"
    elif shape == 2:
        text = f"{text} {activity_remark(rng, s.hobby)}"
    return stylize(rng, text, s.persona.style)
