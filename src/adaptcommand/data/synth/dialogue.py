"""Dialogue plans: which device request is said in which user turn, before any wording.

A session is a list of beats (one user turn and the assistant's answer). Each device the session
touches is a task whose request is spread over one to three turns ("chunks": a vague request, a
partial or full statement of values, "the usual", a yes to an offer); the assistant asks a
clarifying question between chunks and applies the settings after the last. `plan` fits the tasks
into the session's sampled length by merging or splitting chunks and by asking for two devices in
one turn, then fills the rest with small talk, questions about the state, and thanks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from adaptcommand.data.synth.devices import Values
from adaptcommand.data.synth.sampling import pick

MAX_CHUNKS = 3
FILLER_WEIGHTS = {0: 0.3, 1: 0.45, 2: 0.25}  # non-device turns per session
MAX_FILLER = max(FILLER_WEIGHTS)
# Asking for a further device in the same turn: real assistant turns report one device (96% of
# those that apply settings in the real sample), so two devices in one turn stay the exception.
PIGGYBACK = 0.2


@dataclass
class Chunk:
    kind: str  # vague | state | usual | yes | switch
    params: tuple[str, ...] = ()


@dataclass
class Task:
    device: str
    values: Values  # what the assistant applies after the last chunk
    chunks: list[Chunk]
    implicit: bool = False  # the user must not state values for this task
    on: bool = True  # for switch tasks: on or off
    decoy: Values = field(default_factory=dict)  # applied first, then revised to `values`
    for_today: bool = False  # the revision is a one-day change to a routine ("today")

    def final(self, index: int) -> bool:
        return index == len(self.chunks) - 1

    def stated(self) -> set[str]:
        return {p for c in self.chunks if c.kind == "state" for p in c.params}


@dataclass
class Beat:
    kind: str  # task | revise | chat | query | check | thanks
    items: list[tuple[int, int]] = field(default_factory=list)  # (task, chunk) said this turn


def capacity(task: Task) -> int:
    """The most turns a task can be spread over."""
    if task.device == "security" or task.chunks[0].kind in ("yes", "switch"):
        return 1
    if task.implicit:
        return 2
    return min(MAX_CHUNKS, 1 + len(task.values))


def _can_piggyback(tasks: list[Task], j: int) -> bool:
    return j > 0 and tasks[j].chunks[0].kind != "yes"


def _shorten(task: Task) -> bool:
    """One turn fewer for this task: drop a leading vague chunk or merge two statements."""
    chunks = task.chunks
    if len(chunks) < 2:
        return False
    if chunks[0].kind == "vague":
        del chunks[0]
    else:
        chunks[:2] = [Chunk("state", chunks[0].params + chunks[1].params)]
    return True


def _lengthen(rng: random.Random, task: Task) -> bool:
    """One turn more: split a statement in two, or open with a vague request."""
    chunks = task.chunks
    first = chunks[0]
    if len(chunks) >= MAX_CHUNKS or task.device == "security" or first.kind in ("yes", "switch"):
        return False
    splittable = [k for k, c in enumerate(chunks) if c.kind == "state" and len(c.params) >= 2]
    if splittable:
        k = rng.choice(splittable)
        params = chunks[k].params
        cut = rng.randint(1, len(params) - 1)
        chunks[k:k + 1] = [Chunk("state", params[:cut]), Chunk("state", params[cut:])]
    elif first.kind == "vague" and len(chunks) == 1:
        chunks.append(Chunk("usual") if task.implicit else Chunk("state", tuple(task.values)))
    elif first.kind != "vague":
        chunks.insert(0, Chunk("vague"))
    else:
        return False
    return True


def _fit(rng: random.Random, tasks: list[Task], piggy: list[bool], target: int) -> None:
    """Change chunks and piggybacking in place until the tasks take `target` turns, if they can."""
    while True:
        turns = sum(len(t.chunks) for t in tasks) - sum(piggy)
        if turns == target:
            return
        moves = []
        if turns > target:
            moves += [("pig", j) for j in range(len(tasks))
                      if not piggy[j] and _can_piggyback(tasks, j)]
            moves += [("short", j) for j, t in enumerate(tasks) if len(t.chunks) > 1]
        else:
            moves += [("unpig", j) for j in range(len(tasks)) if piggy[j]]
            moves += [("long", j) for j in range(len(tasks))]
        rng.shuffle(moves)
        moves.sort(key=lambda m: m[0] in ("pig", "long"))  # one device a turn, when possible
        for move, j in moves:
            if move == "pig" or move == "unpig":
                piggy[j] = move == "pig"
                break
            if (_shorten(tasks[j]) if move == "short" else _lengthen(rng, tasks[j])):
                break
        else:
            return


def plan(rng: random.Random, tasks: list[Task], n_beats: int, group: bool) -> list[Beat]:
    """Beats for `tasks` in about `n_beats` turns; `group` asks for everything in turn one."""
    filler = min(n_beats - 1, pick(rng, FILLER_WEIGHTS))
    piggy = [group and j > 0 for j in range(len(tasks))]
    if not group:
        piggy = [_can_piggyback(tasks, j) and rng.random() < PIGGYBACK for j in range(len(tasks))]
        _fit(rng, tasks, piggy, n_beats - filler)
    beats: list[Beat] = []
    for j, task in enumerate(tasks):
        for c in range(len(task.chunks)):
            if c == 0 and piggy[j]:
                beats[-1].items.append((j, 0))
            else:
                beats.append(Beat("task", [(j, c)]))
    return _add_filler(rng, tasks, beats, n_beats - len(beats))


def _add_filler(rng: random.Random, tasks: list[Task], beats: list[Beat], n: int) -> list[Beat]:
    """Insert `n` non-device beats where no clarifying question is pending."""
    if n <= 0:
        return beats
    tail = [Beat("thanks")] if rng.random() < 0.6 else []
    for _ in range(n - len(tail)):
        open_at = [k for k in range(len(beats) + 1) if k == 0 or _closed(tasks, beats[k - 1])]
        k = rng.choice(open_at)
        kinds = ["chat"]
        if any(b.kind == "task" for b in beats[:k]):
            kinds += ["query"] + ["check"] * all(b.kind != "check" for b in beats)
        kind = rng.choice(kinds)
        beats.insert(k, Beat(kind))
    return beats + tail


def _closed(tasks: list[Task], beat: Beat) -> bool:
    """True when the beat's assistant turn asks no clarifying question."""
    if beat.kind != "task":
        return True
    t, c = beat.items[-1]
    return tasks[t].final(c)


def add_revision(rng: random.Random, tasks: list[Task], beats: list[Beat], t: int) -> None:
    """Insert a beat in which the user changes task `t`'s applied decoy value to the real one:
    after the task is done, at a point where no question is pending, before any goodbye."""
    done = max(k for k, b in enumerate(beats) if b.kind == "task" and
               any(i == t and tasks[i].final(c) for i, c in b.items))
    spots = [k for k in range(done + 1, len(beats) + 1)
             if _closed(tasks, beats[k - 1]) and beats[k - 1].kind != "thanks"]
    beats.insert(rng.choice(spots[:2]), Beat("revise", [(t, 0)]))
