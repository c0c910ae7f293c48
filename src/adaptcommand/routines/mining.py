"""The routine miner: each user's routines from what a deployed assistant sees.

Only the messages and each session's context (`meta`) are read, never `routines`,
`applied_routines` or summaries. Steps, per persona:

1. Each session's committed end state (`session_end_state`): the settings every message commits
   to, read by the action extractor (offers and questions commit nothing), later ones
   overriding earlier ones, so a changed mind ends on its last word.
2. Candidate trigger sets: every group of at least `min_support` sessions that agree on some
   subset of the five context fields, described by all the fields they share (a routine that
   leaves a field open is seen in sessions that differ in it; one that sets it is not).
3. Each candidate's settings: a setting belongs to it when at least `min_share` of its sessions
   state it; its value is the mode, or, for a routine that drifted, the value it changed to
   (one change point per setting, when at least `drift_support` sessions show the old and the
   new value and it contradicts fewer sessions than the plain mode); a one-session tweak is
   outvoted.
4. Greedy choice: the candidate whose settings explain its sessions best (agreeing settings
   minus `disagree_cost` per contradicted one and `absent_cost` per unstated one, minus
   `silent_cost` per session that shows none of them, such as a spontaneous session in the
   routine's context) is taken, then the next
   best whose triggers cannot fire in the same context, until no candidate gains. A trigger set
   more general than the truth pulls in sessions that contradict it; a more specific one
   explains fewer sessions: the true one wins. A candidate whose sessions are explained better
   by splitting them on one more field (two routines sharing values and all but one trigger)
   is skipped for its parts.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from adaptcommand.config import StrictModel
from adaptcommand.data.schema import DEVICE_MODELS, DEVICES, TRIGGER_VALUES, CleanDialogue
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.evaluation.turns import session_id_of
from adaptcommand.routines.profile import MinedRoutine, UserProfile

Key = tuple[str, str]  # (device, param)
FIELDS: tuple[str, ...] = tuple(TRIGGER_VALUES)


class MiningSettings(StrictModel):
    """Knobs of the miner; the defaults are the measured ones (README, "User model")."""

    min_support: int = Field(1, ge=1, description="Sessions that must show a routine (and that "
                             "must agree on each of its values) for it to be kept, and that must "
                             "show a usual setting outside routines. 1: a routine seen once is "
                             "kept unless a better one explains its session (with few sessions "
                             "per user, most routines are seen once or twice), and a value seen "
                             "once outside routines is a usual setting.")
    drift_support: int = Field(2, ge=1, description="Sessions that must show each side of a "
                               "value change (drift) for it to count: a lone session that "
                               "differs is a one-day tweak, not a new habit.")
    max_sessions: int | None = Field(None, ge=1, description="Use only each persona's most "
                                     "recent N sessions of the split (None: all).")
    min_share: float = Field(0.4, gt=0, le=1, description="Share of a routine's sessions that "
                             "must state a setting for it to belong to the routine.")
    drift: bool = Field(True, description="Let a setting change value once over time (from a "
                        "session on, at least drift_support sessions show the new value); "
                        "False: plain majority.")
    disagree_cost: float = Field(2.0, ge=0, description="Penalty per session setting that "
                                 "contradicts a candidate routine's value.")
    absent_cost: float = Field(1.0, ge=0, description="Penalty per candidate setting a session "
                               "in its context does not state (a routine applied in part pays "
                               "a little; a session that only shares a value by chance, much).")
    silent_cost: float = Field(1.0, ge=0, description="Penalty per session in a candidate's "
                               "context that shows none of its settings.")


@dataclass(frozen=True)
class ObservedSession:
    """One session as the miner sees it: id, context and flattened end state."""

    session_id: int
    context: tuple[str, ...] | None  # meta values in FIELDS order; None when not recorded
    settings: dict[Key, Any]


@dataclass(frozen=True)
class _Candidate:
    pattern: dict[int, str]  # field index -> value
    members: tuple[int, ...]  # indices into the persona's sessions, time order
    values: dict[Key, Any]
    gain: float


def session_end_state(dialogue: CleanDialogue) -> dict[str, dict[str, Any]]:
    """The settings a session ends with: every message's commitments in order (user requests and
    assistant reports alike), a later value overriding an earlier one; devices and params in
    schema order (a device switched on with no value: `{}`).

    Offers, questions and negated requests commit nothing (the extractor's rules), except an
    offer the user's next message accepts ("Shall I also dim the lights to 30?" "Yes, please.");
    a declined one stays uncommitted. When the assistant's reply confirms a value of the user's
    request on another device ("volume 35" -> "speaker volume to 35"), the reply's reading wins.
    """
    values: dict[Key, Any] = {}
    touched: set[str] = set()
    messages = dialogue.messages
    raw = [extract_actions(m.text) for m in messages]
    readings = [_flatten(r) for r in raw]
    for i, message in enumerate(messages):
        reading = dict(readings[i])
        following = messages[i + 1] if i + 1 < len(messages) else None
        if message.role == "user" and following is not None and following.role == "assistant":
            reading = _reconcile(reading, readings[i + 1])
        if (message.role == "assistant" and following is not None and following.role == "user"
                and _ACCEPT.match(following.text)):
            reading = {**_offered(message.text), **reading}
        touched.update(device for device, params in raw[i].items() if not params)
        touched.update(device for device, _ in reading)
        values.update(reading)
    nested = _nest(values)
    return {device: nested.get(device, {}) for device in DEVICES if device in touched}


_ACCEPT = re.compile(r"\s*(?:yes|yeah|yep|sure|ok(?:ay)?|please\s+do|absolutely|go\s+ahead"
                     r"|sounds\s+(?:good|great|perfect)|definitely|of\s+course)\b", re.IGNORECASE)
_OFFER_LEAD = re.compile(
    r"\b(?:would\s+you\s+like\s+me\s+to|do\s+you\s+want\s+me\s+to|want\s+me\s+to"
    r"|shall\s+I|should\s+I|I\s+can|I\s+could)\s+(?:also\s+)?", re.IGNORECASE)


def _offered(text: str) -> dict[Key, Any]:
    """The settings an assistant message offers ("Shall I also set the AC to 22?"), read as if
    they were committed: the offer's lead removed, the question made a statement."""
    statements = [_OFFER_LEAD.sub("", sentence).rstrip("?") + "."
                  for sentence in re.split(r"(?<=[.!?])\s+", text) if _OFFER_LEAD.search(sentence)]
    return _flatten(extract_actions(" ".join(statements))) if statements else {}


def _reconcile(request: Mapping[Key, Any], reply: Mapping[Key, Any]) -> dict[Key, Any]:
    """Drop a requested (device, param, value) that the reply applies to another device instead
    (and not to this one): the assistant resolved which device an ambiguous request meant."""
    def elsewhere(key: Key, value: Any) -> bool:
        return key not in reply and any(
            k[1] == key[1] and k[0] != key[0] and v == value for k, v in reply.items())

    return {key: value for key, value in request.items() if not elsewhere(key, value)}


def mine_profiles(
    dialogues: Mapping[str, Sequence[CleanDialogue]], settings: MiningSettings | None = None
) -> dict[str, UserProfile]:
    """persona_id -> mined `UserProfile`, from each persona's dialogues (time order)."""
    settings = settings or MiningSettings()
    return {pid: mine_persona(pid, sessions, settings) for pid, sessions in dialogues.items()}


def mine_persona(
    persona_id: str, dialogues: Sequence[CleanDialogue], settings: MiningSettings
) -> UserProfile:
    """One persona's profile (see the module docstring for the steps)."""
    if settings.max_sessions is not None:
        dialogues = dialogues[-settings.max_sessions:]
    observed = [observe(dialogue, position) for position, dialogue in enumerate(dialogues)]
    return mine_observed(persona_id, observed, settings)


def mine_observed(
    persona_id: str, sessions: Sequence[ObservedSession], settings: MiningSettings
) -> UserProfile:
    """Steps 2-4 on sessions already read (`observe`), in time order."""
    chosen = _choose(sessions, settings)
    routines = [_routine(candidate, sessions) for candidate in chosen]
    used = {sid for routine in routines for sid in routine.sessions}
    rest = [s for s in sessions if s.session_id not in used]
    return UserProfile(persona_id=persona_id, sessions_used=len(sessions), routines=routines,
                       common_settings=_nest(_common(rest, settings)))


def observe(dialogue: CleanDialogue, position: int) -> ObservedSession:
    """What the miner reads of one session: its id, context and end state (step 1)."""
    meta = dialogue.meta.model_dump() if dialogue.meta is not None else None
    context = tuple(meta[f] for f in FIELDS) if meta is not None else None
    return ObservedSession(session_id_of(dialogue, position), context,
                    _flatten(session_end_state(dialogue)))


def _candidate_groups(
    sessions: Sequence[ObservedSession], min_support: int
) -> set[tuple[int, ...]]:
    """Every set of >= min_support sessions that share the values of some subset of fields."""
    with_context = [k for k, s in enumerate(sessions) if s.context is not None]
    groups: set[tuple[int, ...]] = set()
    for size in range(1, len(FIELDS) + 1):
        for fields in itertools.combinations(range(len(FIELDS)), size):
            by_values: dict[tuple[str, ...], list[int]] = defaultdict(list)
            for k in with_context:
                context = sessions[k].context
                assert context is not None
                by_values[tuple(context[f] for f in fields)].append(k)
            groups.update(tuple(m) for m in by_values.values() if len(m) >= min_support)
    return groups


def _shared_pattern(sessions: Sequence[ObservedSession], members: Sequence[int]) -> dict[int, str]:
    """The fields (and values) all `members` agree on: the most specific trigger set that
    matches exactly them."""
    contexts = [sessions[k].context for k in members]
    first = contexts[0]
    assert first is not None
    return {f: first[f] for f in range(len(FIELDS))
            if all(c is not None and c[f] == first[f] for c in contexts)}


@dataclass(frozen=True)
class _Value:
    """A routine's value for one setting; `old` held before member number `since` (drift)."""

    value: Any
    since: int = 0
    old: Any = None

    def at(self, rank: int) -> Any:
        """The value in force for the routine's `rank`-th session (time order)."""
        return self.old if rank < self.since else self.value


def _drifted(sequence: Sequence[tuple[int, Any]], support: int) -> _Value:
    """The value of one setting stated by a routine's sessions, given as (rank, value) in time
    order: the mode, or, when it explains them better, a change from
    one value to another, each shown by at least `support` sessions (before and after the
    change; a lone early session is a tweak or a spontaneous one, not an old habit). Ties: no
    change; equal counts: the more recent value."""
    total: Counter[Any] = Counter(v for _, v in sequence)
    last = {v: r for r, v in sequence}
    mode = max(total, key=lambda v: (total[v], last[v]))
    best, misses = _Value(mode), len(sequence) - total[mode]
    before: Counter[Any] = Counter()
    for cut in range(1, len(sequence)):
        before[sequence[cut - 1][1]] += 1
        after = total - before
        old = max(before, key=lambda v: (before[v], last[v]))
        new = max(after, key=lambda v: (after[v], last[v]))
        wrong = (cut - before[old]) + (len(sequence) - cut - after[new])
        if (new != old and min(before[old], after[new]) >= support
                and wrong < misses):
            best, misses = _Value(new, sequence[cut][0], old), wrong
    return best


def _routine_values(
    sessions: Sequence[ObservedSession], members: Sequence[int], settings: MiningSettings
) -> dict[Key, _Value]:
    """Settings stated by >= min_share of the members, each at its (drift-aware) mode, kept when
    at least min_support sessions show that value."""
    stated: dict[Key, list[tuple[int, Any]]] = defaultdict(list)
    for rank, k in enumerate(members):
        for key, value in sessions[k].settings.items():
            stated[key].append((rank, value))
    values: dict[Key, _Value] = {}
    for key, sequence in stated.items():
        if len(sequence) < settings.min_share * len(members):
            continue
        if settings.drift:
            value = _drifted(sequence, settings.drift_support)
        else:
            counts = Counter(v for _, v in sequence)
            value = _Value(max(counts, key=counts.__getitem__))
        if sum(v == value.value for r, v in sequence if r >= value.since) >= settings.min_support:
            values[key] = value
    return values


def _gain(
    sessions: Sequence[ObservedSession], members: Sequence[int], values: Mapping[Key, _Value],
    settings: MiningSettings,
) -> tuple[float, int]:
    """(how well `values` explain the members' settings, members showing any of them)."""
    gain, showing = 0.0, 0
    for rank, k in enumerate(members):
        state = sessions[k].settings
        agree = sum(1 for key, value in values.items()
                    if state.get(key, _MISSING) == value.at(rank))
        disagree = sum(1 for key, value in values.items()
                       if key in state and state[key] != value.at(rank))
        absent = len(values) - agree - disagree
        gain += agree - settings.disagree_cost * disagree - settings.absent_cost * absent
        if agree:
            showing += 1
        else:
            gain -= settings.silent_cost
    return gain, showing


def _evaluate(sessions: Sequence[ObservedSession], members: Sequence[int],
              settings: MiningSettings) -> _Candidate | None:
    """The candidate routine of these sessions, or None when it explains nothing."""
    values = _routine_values(sessions, members, settings)
    if not values:
        return None
    gain, showing = _gain(sessions, members, values, settings)
    if gain <= 0 or showing < settings.min_support:
        return None
    return _Candidate(_shared_pattern(sessions, members), tuple(members), values, gain)


def _candidates(sessions: Sequence[ObservedSession], settings: MiningSettings) -> list[_Candidate]:
    found = (_evaluate(sessions, members, settings)
             for members in _candidate_groups(sessions, settings.min_support))
    candidates = [c for c in found if c is not None]
    # Best gain first; ties: the more specific trigger set, then the earlier sessions.
    candidates.sort(key=lambda c: (-c.gain, -len(c.pattern), c.members))
    return candidates


def _split_gain(candidate: _Candidate, sessions: Sequence[ObservedSession],
                settings: MiningSettings) -> float:
    """The best total gain of splitting the candidate's sessions by one more context field:
    two routines that share values and a few triggers explain their sessions better apart."""
    best = 0.0
    for field in range(len(FIELDS)):
        if field in candidate.pattern:
            continue
        parts: dict[str, list[int]] = defaultdict(list)
        for k in candidate.members:
            context = sessions[k].context
            assert context is not None
            parts[context[field]].append(k)
        if len(parts) < 2:
            continue
        found = (_evaluate(sessions, part, settings) for part in parts.values()
                 if len(part) >= settings.min_support)
        best = max(best, sum(c.gain for c in found if c is not None))
    return best


def _overlap(a: Mapping[int, str], b: Mapping[int, str]) -> bool:
    """Whether two trigger sets can fire in the same context."""
    return all(a[f] == b[f] for f in a.keys() & b.keys())


def _choose(sessions: Sequence[ObservedSession], settings: MiningSettings) -> list[_Candidate]:
    """Greedy: the best candidate, then the best that cannot fire together with any chosen one,
    skipping one whose sessions are better explained split by another field. A candidate's
    members are exactly the sessions its pattern matches, so candidates that cannot fire
    together never share a session and their gains stay valid as they are chosen."""
    chosen: list[_Candidate] = []
    for candidate in _candidates(sessions, settings):
        if any(_overlap(candidate.pattern, c.pattern) for c in chosen):
            continue
        if _split_gain(candidate, sessions, settings) > candidate.gain:
            continue
        chosen.append(candidate)
    return chosen


def _routine(candidate: _Candidate, sessions: Sequence[ObservedSession]) -> MinedRoutine:
    """The chosen candidate as a `MinedRoutine`: its sessions are those showing its settings;
    a setting's support counts the sessions that show its value since it last changed, its
    confidence divides that by the routine's sessions since then."""
    members = candidate.members
    showing = [rank for rank, k in enumerate(members)
               if any(sessions[k].settings.get(key, _MISSING) == v.at(rank)
                      for key, v in candidate.values.items())]
    support: dict[Key, int] = {}
    confidence: dict[Key, float] = {}
    for key, value in candidate.values.items():
        since = [rank for rank in showing if rank >= value.since]
        support[key] = sum(sessions[members[r]].settings.get(key, _MISSING) == value.value
                           for r in since)
        confidence[key] = round(support[key] / len(since), 4) if since else 0.0
    ordered = _ordered({key: value.value for key, value in candidate.values.items()})
    return MinedRoutine(
        triggers={FIELDS[f]: value for f, value in sorted(candidate.pattern.items())},
        actions=_nest(ordered),
        support=len(showing),
        sessions=[sessions[members[r]].session_id for r in showing],
        confidence={_name(key): confidence[key] for key in ordered},
        field_support={_name(key): support[key] for key in ordered},
    )


def _common(rest: Sequence[ObservedSession], settings: MiningSettings) -> dict[Key, Any]:
    """The user's most frequent value per setting in sessions outside routines (seen at least
    min_support times; ties go to the most recent)."""
    counts: dict[Key, Counter[Any]] = defaultdict(Counter)
    last: dict[tuple[Key, Any], int] = {}
    for position, session in enumerate(rest):
        for key, value in session.settings.items():
            counts[key][value] += 1
            last[key, value] = position
    common = {}
    for key, tally in counts.items():
        value = max(tally, key=lambda v, key=key: (tally[v], last[key, v]))
        if tally[value] >= settings.min_support:
            common[key] = value
    return _ordered(common)


_MISSING = object()


def _flatten(state: Mapping[str, Mapping[str, Any]]) -> dict[Key, Any]:
    return {(device, param): value for device, params in state.items()
            for param, value in params.items()}


def _ordered(values: Mapping[Key, Any]) -> dict[Key, Any]:
    """Settings in schema order (devices, then each device's params)."""
    order = {key: i for i, key in enumerate(
        (device, param) for device in DEVICES for param in DEVICE_MODELS[device].model_fields)}
    return {key: values[key] for key in sorted(values, key=order.__getitem__)}


def _nest(values: Mapping[Key, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for (device, param), value in _ordered(values).items():
        nested.setdefault(device, {})[param] = value
    return nested


def _name(key: Key) -> str:
    return f"{key[0]}.{key[1]}"
