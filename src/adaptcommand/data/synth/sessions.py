"""A user's sessions: which are routine-driven, what each one asks for, and its summary.

Three quarters of a user's sessions apply one of their routines (meta = the routine's triggers);
in a few of those (`SynthConfig.value_free_share`) the user never states a value ("my usual
rainy-evening setup"), so only knowledge of this user's routines gives the right numbers. The
rest are spontaneous sessions with ad-hoc requests, mostly in contexts where no routine of
theirs fires. The imperfections of `SynthConfig` bend this: a routine session may apply only
part of the routine or change one value for the day, the user may correct a value once it is
applied, routines drift, and some spontaneous sessions happen in a routine's context.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from adaptcommand.data.schema import Routine, Session, SessionMeta
from adaptcommand.data.synth.config import SynthConfig
from adaptcommand.data.synth.devices import NAMES, SHORT, Values, join_and
from adaptcommand.data.synth.dialogue import MAX_FILLER, Chunk, Task, add_revision, capacity, plan
from adaptcommand.data.synth.imperfections import (
    Drift,
    Settings,
    apply_part,
    chance,
    make_drifts,
    nudge,
    settings_at,
    tweak,
)
from adaptcommand.data.synth.personas import Persona
from adaptcommand.data.synth.remarks import routine_label
from adaptcommand.data.synth.render import Scene, render
from adaptcommand.data.synth.routines import adhoc_values, session_meta, set_triggers
from adaptcommand.data.synth.sampling import favourite, pick, weighted_sample

ROUTINE_SHARE = 0.75
MAX_MESSAGES = 16
# Messages per session (4..16), weighted so that after fitting the plans (a session with few
# devices is cut short rather than padded with small talk) the mean is the published 9.88.
LENGTHS = {4: 4, 5: 1, 6: 9, 7: 2, 8: 17, 9: 4, 10: 22, 11: 4, 12: 16, 13: 2, 14: 10, 15: 1,
           16: 4.5}
# Ways of asking for one device: "all"/"some" values stated, "vague" ("turn up the heat"),
# "usual" ("the way I like it"), "yes" to the assistant's offer, or two-turn combinations in
# which the assistant asks a clarifying question in between. Real assistants apply what the user
# said and ask for the rest: 5% of the settings they apply in the real sample were not stated by
# the user before, so the ways in which the assistant fills values in itself ("some", "vague",
# "usual", "yes") are rare outside value-free sessions.
EXPLICIT_ASKING = {"all": 0.4, "some": 0.04, "vague": 0.01, "vague-all": 0.27, "some-rest": 0.26,
                   "yes": 0.01, "usual": 0.01}
IMPLICIT_ASKING = {"usual": 0.4, "vague": 0.25, "vague-usual": 0.2, "yes": 0.15}
ADHOC_ASKING = {"all": 0.5, "vague": 0.02, "vague-all": 0.33, "some-rest": 0.15}
SPREAD_WAYS = ("vague-usual", "vague-all", "some-rest")  # not for the security system
ADHOC_DEVICES = {1: 0.2, 2: 0.4, 3: 0.3, 4: 0.1}
SWITCH_SHARE = 0.13  # spontaneous requests that only switch a device on or off
ADHOC_DEVICE_WEIGHTS = {"ac": 3.0, "lights": 3.0, "tv": 1.5, "speaker": 0.7, "security": 0.3}
# People ask for climate and light first (a random term reorders some sessions).
ASKING_ORDER = {"ac": 0.0, "lights": 0.1, "tv": 0.5, "speaker": 0.7, "security": 0.9}


@dataclass(frozen=True)
class SessionFacts:
    """What the generator knows about a session that its record does not say."""

    committed: dict[str, Values]  # device -> settings in force at the end ({}: switched only)
    partial: bool = False  # applied only part of its routine
    tweaked: bool = False  # changed one routine value for the day
    corrected: bool = False  # the user changed their mind about one value
    before_drift: bool = False  # applied a drifting routine's old value
    routine_context: bool = False  # spontaneous, in the context of one of the user's routines


def make_sessions(rng: random.Random, persona: Persona, routines: list[Routine], n: int,
                  config: SynthConfig) -> list[tuple[Session, SessionFacts]]:
    """`n` sessions in time order, 75% of them routine-driven (rounded up or down at random, so
    the share holds over many users)."""
    n_driven = int(ROUTINE_SHARE * n + rng.random())
    driven = [True] * n_driven + [False] * (n - n_driven)
    rng.shuffle(driven)
    drifts = make_drifts(rng, routines, n, config.drift_rate)
    return [_session(rng, persona, routines, sid, is_routine, config, drifts)
            for sid, is_routine in enumerate(driven)]


def _session(rng: random.Random, persona: Persona, routines: list[Routine], session_id: int,
             is_routine: bool, config: SynthConfig,
             drifts: dict[int, Drift]) -> tuple[Session, SessionFacts]:
    n_beats, trailing = divmod(pick(rng, LENGTHS), 2)
    index = rng.randrange(len(routines)) if is_routine else None
    routine = routines[index] if index is not None else None
    in_context = routine is None and chance(rng, config.routine_context_spontaneous)
    meta = session_meta(rng, routine, routines, in_context)
    group, label, tweaked, facts = False, None, None, {}
    if routine is not None:
        drift = drifts.get(index)
        usual = settings_at(routine, session_id, drift)
        settings = apply_part(rng, usual, config.partial_rate)
        tweaked = tweak(rng, settings, config.tweak_rate)
        implicit = rng.random() < config.value_free_share
        group = implicit and n_beats <= 3 and rng.random() < 0.6
        tasks = _routine_tasks(rng, settings, implicit, group)
        label = routine_label(rng, set_triggers(routine))
        facts = {"partial": len(settings) < len(usual), "tweaked": tweaked is not None,
                 "before_drift": drift is not None and session_id < drift.start}
    else:
        tasks = _adhoc_tasks(rng, meta, max(pick(rng, ADHOC_DEVICES), (n_beats - 1) // 3))
        facts = {"routine_context": in_context}
    revising = tweaked is not None or chance(rng, config.mind_change_rate)
    n_beats = min(n_beats, sum(map(capacity, tasks)) + MAX_FILLER)
    n_beats -= revising and 2 * (n_beats + 1) + trailing > MAX_MESSAGES  # room for the revision
    beats = plan(rng, tasks, n_beats, group)
    revised = _revision(rng, tasks, tweaked) if revising else None
    if revised is not None:
        add_revision(rng, tasks, beats, revised)
    scene = Scene(rng=rng, persona=persona, meta=meta, tasks=tasks,
                  names=[favourite(rng, NAMES[t.device]) for t in tasks],
                  hobby=rng.choice(persona.hobbies), label=label, group=group,
                  config=config)
    session = Session(
        session_id=session_id, meta=meta, messages=render(scene, beats, trailing),
        applied_routines=[index] if index is not None else [],
        session_summarization=_summary(rng, persona, meta, tasks, label),
    )
    corrected = revised is not None and not tasks[revised].for_today
    return session, SessionFacts(committed={t.device: t.values for t in tasks},
                                 corrected=corrected, **facts)


def _revision(rng: random.Random, tasks: list[Task],
              tweaked: tuple[str, str, object] | None) -> int | None:
    """The task whose value the user changes once applied (its decoy set), if any.

    A one-day tweak the user did not state is revealed this way (the usual value applied
    first); otherwise a correction: a value the user stated is first said differently."""
    if tweaked is not None:
        device, param, usual = tweaked
        t = next(k for k, task in enumerate(tasks) if task.device == device)
        if param in tasks[t].stated():
            return None
        tasks[t].decoy, tasks[t].for_today = {param: usual}, True
        return t
    options = [(t, p) for t, task in enumerate(tasks)
               for p in sorted(task.stated()) if p != "armed" and p in task.values]
    if not options:
        return None
    t, param = rng.choice(options)
    tasks[t].decoy = {param: nudge(rng, tasks[t].device, param, tasks[t].values[param])}
    return t


def _split(rng: random.Random, params: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    cut = rng.randint(1, len(params) - 1)
    return params[:cut], params[cut:]


def _chunks(rng: random.Random, way: str, params: tuple[str, ...]) -> list[Chunk]:
    """The turns of one way of asking for a device (the keys of the *_ASKING tables)."""
    if way == "some":
        chosen = rng.sample(params, rng.randint(1, len(params) - 1))
        return [Chunk("state", tuple(p for p in params if p in chosen))]
    if way == "some-rest":
        return [Chunk("state", part) for part in _split(rng, params)]
    return {
        "usual": [Chunk("usual")], "vague": [Chunk("vague")], "yes": [Chunk("yes")],
        "vague-usual": [Chunk("vague"), Chunk("usual")], "all": [Chunk("state", params)],
        "vague-all": [Chunk("vague"), Chunk("state", params)],
    }[way]


def _routine_chunks(rng: random.Random, device: str, params: tuple[str, ...], first: bool,
                    implicit: bool) -> list[Chunk]:
    """How the user asks for one routine device; implicit sessions never state values."""
    plain = "usual" if implicit else "all"
    way = pick(rng, IMPLICIT_ASKING if implicit else EXPLICIT_ASKING)
    if (way == "yes" and first) or (device == "security" and way in SPREAD_WAYS):
        way = plain
    if way in ("some", "some-rest") and len(params) < 2:
        way = "all"
    return _chunks(rng, way, params)


def _routine_tasks(rng: random.Random, settings: Settings, implicit: bool,
                   group: bool) -> list[Task]:
    """One task per routine device, in a random order; `group`: all asked for as one routine."""
    ordered = sorted(settings.items(), key=lambda item: ASKING_ORDER[item[0]] + rng.random())
    return [Task(device=device, values=values, implicit=implicit,
                 chunks=[Chunk("usual")] if group
                 else _routine_chunks(rng, device, tuple(values), j == 0, implicit))
            for j, (device, values) in enumerate(ordered)]


def _adhoc_tasks(rng: random.Random, meta: SessionMeta, n_devices: int) -> list[Task]:
    """Spontaneous requests: any devices, any values, or just switching something on or off."""
    devices = weighted_sample(rng, ADHOC_DEVICE_WEIGHTS, min(n_devices, len(NAMES)))
    devices.sort(key=lambda d: ASKING_ORDER[d] + rng.random())
    tasks = []
    for device in devices:
        if rng.random() < SWITCH_SHARE:
            tasks.append(Task(device, {}, [Chunk("switch")], on=rng.random() < 0.5))
            continue
        values = adhoc_values(rng, device, meta.model_dump())
        way = pick(rng, ADHOC_ASKING)
        if device == "security" or (way == "some-rest" and len(values) < 2):
            way = "all"
        tasks.append(Task(device, values, _chunks(rng, way, tuple(values))))
    return tasks


def _summary(rng: random.Random, persona: Persona, meta: SessionMeta, tasks: list[Task],
             label: tuple[str, str] | None) -> str:
    """One short sentence saying what the session was about."""
    devices = join_and([SHORT[t.device] for t in tasks])
    when = f"{meta.weather if meta.weather != 'cloudy' else 'grey'} {meta.time_of_day}"
    if label is not None:
        named = f"{label[0]}-{label[1]}"
        return rng.choice((
            f"{persona.first} asked for the usual {named} setup and the assistant adjusted "
            f"the {devices}.",
            f"The assistant applied the user's {named} routine to the {devices}.",
            f"On a {when}, the user had the {devices} set to their usual settings.",
            f"User requested their {named} preferences for the {devices}.",
        ))
    return rng.choice((
        f"The user made ad-hoc changes to the {devices} on a {when}.",
        f"{persona.first} adjusted the {devices} on a {meta.day_of_week} {meta.time_of_day}.",
        f"Spontaneous request: the {devices} adjusted.",
        f"User asked for one-off {devices} changes.",
    ))
