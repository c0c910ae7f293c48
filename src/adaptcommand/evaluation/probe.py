"""The preference probe: does the model recall a user's routine from its trigger context alone?

Turn metrics reward echoing what the context already states; here the prompt says only *when*
it is ("It's a rainy, cold weekday evening after sunset. Set things up the way I like.") and
never what to set, so every matching value comes from what the model knows about the user.
Each routine of each persona is one prompt, generated greedily exactly like an evaluated turn
(same system prompt, same adapter routing), and scored by `probe_scoring`.

Outputs (`probe.json`, `probe_predictions.jsonl`) never share a name with an evaluation's, so a
probe can be written into the run directory of the same arm and the report shows both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaptcommand.arms.profile import probe_profiles, turn_texts, uses_profile_prompt
from adaptcommand.arms.profile_answer import PROFILE_ANSWER_ARM
from adaptcommand.data.io import DIALOGUES_FILE, SplitName, load_splits, read_dialogues_file
from adaptcommand.data.schema import Message, Routine, Triggers, actions_dict
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.evaluation.actions import extract_actions
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.harness import RESULTS, progress_bar
from adaptcommand.evaluation.predictor import Predictor, ProfileTexts
from adaptcommand.evaluation.probe_scoring import VALUE_TOLERANCES, RecallScores, score_recall
from adaptcommand.evaluation.runs import Scope, run_info, setup_arm
from adaptcommand.evaluation.stats import (
    Statistic,
    mean_of_sums,
    micro_f1,
    too_few_users,
    user_bootstrap_ci,
)
from adaptcommand.evaluation.turns import Turn, group_by_persona
from adaptcommand.fileio import write_json_atomic, write_jsonl_atomic
from adaptcommand.identity import changed_fields, profiles_identity
from adaptcommand.models.profile_prompt import profile_settings
from adaptcommand.models.prompting import trigger_sentence
from adaptcommand.routines.profile import UserProfile

PROBE_FILE = "probe.json"
PROBE_PREDICTIONS = "probe_predictions.jsonl"
# The probe asks for a whole routine: stated in full it takes up to about 90 tokens (the mined
# profile's own answers on the study's 48 routines: 15-86). A turn's budget would cut it (the
# study's 40 tokens cut 43 of 48 answers of an adapter that states routines in full).
PROBE_MIN_NEW_TOKENS = 128
PROBE_REQUEST = "Set things up the way I like."


def probe_prompt(triggers: Triggers, request: str = PROBE_REQUEST) -> str:
    """The user's message of one probe: the trigger context, then the request."""
    return " ".join(part for part in (trigger_sentence(triggers), request) if part)


@dataclass(frozen=True)
class ProbeItem:
    """One routine of one persona, as the prompt asked and the actions expected."""

    persona_id: str
    routine_index: int
    prompt: str
    actions: dict[str, dict[str, object]]
    context: dict[str, str] = field(default_factory=dict)  # the trigger fields the prompt states

    def as_turn(self) -> Turn:
        """The prompt as a one-message conversation, so it goes through the evaluation's own
        predictor (the routine index stands in for the session id)."""
        return Turn(self.persona_id, self.routine_index, 1,
                    (Message(role="user", text=self.prompt),), "")


def load_routines(scope: Scope, split: SplitName | None = None) -> dict[str, list[Routine]]:
    """persona_id -> routines for the personas of `scope`; data without routines is refused.

    Without --personas these are the personas with sessions in `split` of a prepared data
    directory (so `evaluation.split=cold_start` probes the held-out users, as `eval` does), or
    every persona when no split is given or the scope is a dialogue file.
    """
    if (scope.data is None) == (scope.dialogues is None):
        raise AdaptCommandError("give exactly one of --data DIR or --dialogues FILE")
    source = scope.dialogues or scope.data / DIALOGUES_FILE
    by_persona = group_by_persona(read_dialogues_file(source))
    unknown = sorted(set(scope.personas or []) - set(by_persona))
    if unknown:
        raise AdaptCommandError(f"unknown persona(s): {', '.join(unknown)}")
    chosen = scope.personas or list(by_persona)
    if not scope.personas and scope.data is not None and split is not None:
        chosen = [pid for pid, entry in load_splits(scope.data).items() if entry[split]]
    routines: dict[str, list[Routine]] = {}
    for pid in chosen:
        known = by_persona[pid][0].routines
        if known is None:
            raise DataError(
                f"{pid} has no routines, and the preference probe asks for them: it needs data "
                "prepared from the three-file layout (`data prepare --source`), not dialogues "
                "alone such as the real sample", path=source, field="routines")
        routines[pid] = known
    return routines


def probe_items(routines: Mapping[str, Sequence[Routine]],
                request: str = PROBE_REQUEST) -> list[ProbeItem]:
    """Every routine of every persona, in persona then routine order."""
    items = [ProbeItem(pid, index, probe_prompt(routine.triggers, request),
                       actions_dict(routine.actions),
                       routine.triggers.model_dump(exclude_none=True))
             for pid, persona_routines in routines.items()
             for index, routine in enumerate(persona_routines)]
    if not items:
        raise AdaptCommandError("the chosen personas have no routines to probe")
    return items


def predict_items(
    items: Sequence[ProbeItem], predictor: Predictor, chunk_size: int, show_progress: bool
) -> list[str]:
    """Replies in item order, in chunks so the progress bar moves."""
    replies: list[str] = []
    with progress_bar() as progress:
        task = progress.add_task("probing", total=len(items), visible=show_progress)
        for start in range(0, len(items), chunk_size):
            chunk = items[start : start + chunk_size]
            replies += predictor([item.as_turn() for item in chunk])
            progress.advance(task, len(chunk))
    return replies


def score_items(
    items: Sequence[ProbeItem], replies: Sequence[str],
    actions: Sequence[dict[str, dict[str, object]]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, RecallScores]]:
    """One prediction record per item, and the pooled scores of each persona; the settings
    scored are `actions[i]` when given (a mined profile's), else those reply i commits to."""
    records: list[dict[str, Any]] = []
    by_persona: dict[str, RecallScores] = {}
    for index, (item, reply) in enumerate(zip(items, replies, strict=True)):
        predicted = extract_actions(reply) if actions is None else actions[index]
        scores = score_recall(predicted, item.actions)
        by_persona[item.persona_id] = by_persona.get(item.persona_id, RecallScores()) + scores
        records.append({"persona_id": item.persona_id, "routine_index": item.routine_index,
                        "prompt": item.prompt, "reply": reply, "reply_actions": predicted,
                        "routine_actions": item.actions, "score": scores.to_dict()})
    return records, by_persona


def persona_intervals(by_persona: Mapping[str, RecallScores], settings: EvalConfig) -> dict:
    """Persona-bootstrap intervals: a persona's routines share one memory of that user, so the
    persona, not the routine, is the independent unit. Below `stats.MIN_USERS` personas the
    interval is withheld (`too_few_users`); `n_users` is always given."""
    scores = list(by_persona.values())
    rows: dict[str, tuple[list[tuple[int, ...]], Statistic]] = {
        "value_accuracy": ([(s.correct, s.params) for s in scores], mean_of_sums),
        "param_recall": ([(s.present, s.params) for s in scores], mean_of_sums),
        "device_f1": ([(s.device.tp, s.device.fp, s.device.fn) for s in scores], micro_f1),
    }
    pooled = sum(scores, RecallScores()).metrics()
    options = settings.evaluation
    intervals: dict[str, dict[str, float | None]] = {}
    for name, (sums, statistic) in rows.items():
        few = too_few_users(len(scores))
        if pooled[name] is None:
            intervals[name] = {"estimate": None, "low": None, "high": None,
                               "n_users": len(scores), "too_few_users": few}
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            interval = user_bootstrap_ci(np.array(sums, float), statistic,
                                         options.bootstrap_resamples, options.confidence,
                                         options.seed)
        intervals[name] = {"estimate": interval.estimate, "low": interval.low,
                           "high": interval.high, "n_users": interval.n_users,
                           "too_few_users": interval.too_few_users}
    return intervals


def probe_summary(by_persona: Mapping[str, RecallScores], settings: EvalConfig) -> dict:
    """The numbers of probe.json: overall (micro) metrics, intervals, per persona."""
    pooled = sum(by_persona.values(), RecallScores())
    return {
        "counts": {"personas": len(by_persona), "routines": pooled.routines,
                   "params": pooled.params},
        "metrics": pooled.metrics(),
        "confidence_intervals": persona_intervals(by_persona, settings),
        "per_persona": {pid: {**s.metrics(), "routines": s.routines}
                        for pid, s in by_persona.items()},
        "tolerances": {f"{device}.{param}": tol
                       for (device, param), tol in VALUE_TOLERANCES.items()},
    }


def check_same_arm(out: Path, arm: str) -> None:
    """A probe written next to an evaluation must be of the same arm, or the report would show
    one arm's probe beside another's turn metrics."""
    path = out / RESULTS
    if not path.is_file():
        return
    try:
        evaluated = json.loads(path.read_text(encoding="utf-8")).get("arm")
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None
    if evaluated != arm:
        raise AdaptCommandError(f"{out} holds the evaluation of arm {evaluated!r}, not {arm!r}; "
                                f"probe with --arm {evaluated} (same adapters) or another --out")


def finished_probe(out: Path, identity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The probe already in `out` when it was made with the same identity (greedy decoding makes
    it a pure function of that), else None."""
    path = out / PROBE_FILE
    if not path.is_file() or not (out / PROBE_PREDICTIONS).is_file():
        return None
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return None if changed_fields(previous, identity) else previous


def run_probe(
    settings: EvalConfig,
    scope: Scope,
    out: Path,
    arm: str,
    *,
    adapters: Path | None = None,
    retrieval_k: int = 0,
    force: bool = False,
    show_progress: bool = True,
    profiles_file: Path | None = None,
    request: str = PROBE_REQUEST,
) -> dict[str, Any]:
    """Probe every routine of the personas in `scope` with the arm's model (base, `adapters`
    routed per persona, optionally with retrieved memories) and write probe.json and
    probe_predictions.jsonl to `out`; a finished identical probe is returned, not redone.
    A profile arm's probe prompts carry the arm's profile/context text (`probe_profile_texts`),
    so its probe row measures what the arm knows with its profile. Decoding is greedy, with
    room for a whole routine (at least PROBE_MIN_NEW_TOKENS). `request` replaces the probe's
    request (e.g. a wording no training example used); it is part of the run's identity."""
    greedy = settings.generation.model_copy(update={
        "do_sample": False,
        "max_new_tokens": max(settings.generation.max_new_tokens, PROBE_MIN_NEW_TOKENS)})
    settings = settings.model_copy(update={"generation": greedy})
    items = probe_items(load_routines(scope, settings.evaluation.split), request)
    extra = {"adapters": str(adapters) if adapters else None, "retrieval_k": retrieval_k,
             **profiles_identity(profiles_file),
             **({"request": request} if request != PROBE_REQUEST else {})}
    identity = {"config": settings.model_dump(), **run_info(scope, arm, extra)}
    check_same_arm(out, arm)
    previous = None if force else finished_probe(out, identity)
    if previous is not None:
        return previous
    texts = (probe_profile_texts(settings, items, probe_profiles(settings, scope, adapters,
                                                                 profiles_file))
             if uses_profile_prompt(settings) else None)
    predictor = setup_arm(settings, scope, adapters, retrieval_k, texts).predictor
    replies = predict_items(items, predictor, settings.generation.batch_size * 4, show_progress)
    records, by_persona = score_items(items, replies)
    probe = {**identity, **probe_summary(by_persona, settings)}
    write_jsonl_atomic(out / PROBE_PREDICTIONS, records)
    write_json_atomic(out / PROBE_FILE, probe)
    return probe


def probe_profile_texts(settings: EvalConfig, items: Sequence[ProbeItem],
                        profiles: Mapping[str, UserProfile]) -> ProfileTexts:
    """The profile/context text of each probe prompt, built like the arm's evaluated turns
    (`arms.profile.turn_texts`): the persona's mined profile (`probe_profiles`: never
    a truth routine) with the probe's trigger context standing in for the session's meta."""
    contexts = {(item.persona_id, item.routine_index): item.context for item in items}
    return turn_texts(settings, contexts, lambda key: profiles.get(key[0]))


def profile_answers(items: Sequence[ProbeItem], routines: Mapping[str, Sequence[Routine]],
                    profiles: Mapping[str, Any]) -> tuple[list[str], list[dict]]:
    """What a mined user model answers to each probe: what its profile line states for the
    probe's context (`arms.profile_answer.profile_answer`: the mined routine whose triggers the
    context satisfies, plus the usual settings of the other devices; the context holds only the
    fields the probe states), the same answer the `mined-profile` arm gives a turn and the line
    a profile arm's probe prompt carries; plus a line saying which routine that was."""
    from adaptcommand.routines.profile import routine_for_context

    replies: list[str] = []
    answers: list[dict] = []
    for item in items:
        context = routines[item.persona_id][item.routine_index].triggers.model_dump(
            exclude_none=True)
        profile = profiles.get(item.persona_id)
        mined = routine_for_context(profile, context) if profile is not None else None
        replies.append(f"mined routine {profile.routines.index(mined)} {mined.triggers}"
                       if mined is not None else "no mined routine for this context")
        answers.append(profile_settings(profile, context) if profile is not None else {})
    return replies, answers


def run_profile_probe(
    settings: EvalConfig,
    scope: Scope,
    out: Path,
    profiles_path: Path | None,
    *,
    arm: str = PROFILE_ANSWER_ARM,
) -> dict[str, Any]:
    """The probe answered by a mined user model (`routines mine`'s profiles.json; None for new
    users with `profile.source=growing`: mined from their cold_start_profile sessions, as a
    profile arm's probe reads) instead of a language model: the same items, scores and files
    as `run_probe`, so the report puts the two side by side. No model is loaded; a persona
    without a profile answers nothing."""
    from adaptcommand.routines.profile import read_profiles

    if profiles_path is None and settings.profile.source != "growing":
        raise AdaptCommandError("the mined profile answers from profiles: pass --profiles FILE "
                                "(profiles.json of `routines mine`), or for new users "
                                "profile.source=growing")
    routines = load_routines(scope, settings.evaluation.split)
    items = probe_items(routines)
    profiles = (read_profiles(profiles_path) if profiles_path is not None
                else probe_profiles(settings, scope, None, None))
    check_same_arm(out, arm)
    identity = {"config": settings.model_dump(),
                **run_info(scope, arm, profiles_identity(profiles_path))}
    replies, answers = profile_answers(items, routines, profiles)
    records, by_persona = score_items(items, replies, answers)
    probe = {**identity, **probe_summary(by_persona, settings)}
    write_jsonl_atomic(out / PROBE_PREDICTIONS, records)
    write_json_atomic(out / PROBE_FILE, probe)
    return probe
