"""The mined profile as an arm of its own: no language model, every turn answered with what the
user's profile states for the session's context.

A profile arm can only recall what its profile line holds. Answering each evaluated turn with
exactly that (the mined routine for the session's context plus the usual settings of the other
devices, as `models.prompting.profile_line` writes them), in a wording the action extractor
reads back, and scoring it like any arm's reply gives the recall ceiling the language-model
arms are read against, with the same turns, metrics and persona intervals (its precision is low
by construction: it states every setting on every turn). The probe's counterpart is
`evaluation.probe.run_profile_probe`, which answers with the same
`models.profile_prompt.profile_settings`.

It reads the profile (mined from the train split, or for new users grown from the sessions seen
before each evaluated one) and the evaluated session's context (`meta`): never the turn's
messages, the reference reply or the dataset's routines.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adaptcommand.arms.distilled import routine_reply
from adaptcommand.arms.profile import Meta, SessionKey, session_metas
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.harness import run_evaluation
from adaptcommand.evaluation.predictor import Predictor
from adaptcommand.evaluation.runs import Scope, run_info, turns_and_profile_texts
from adaptcommand.evaluation.turns import Turn
from adaptcommand.identity import profiles_identity
from adaptcommand.models.generation import ReplyCallback
from adaptcommand.models.profile_prompt import profile_settings
from adaptcommand.routines.profile import UserProfile, read_profiles

PROFILE_ANSWER_ARM = "mined-profile"
NO_ANSWER = "I don't know your usual settings for this yet."


def answer_text(actions: Mapping[str, Mapping[str, Any]]) -> str:
    """The answer as a reply that applies every setting (`NO_ANSWER` when there is none); the
    same wording for the same settings."""
    return routine_reply(actions, random.Random(0)) if actions else NO_ANSWER


def profile_predictor(profile_of: Callable[[SessionKey], UserProfile | None],
                      metas: Mapping[SessionKey, Meta]) -> Predictor:
    """Replies from each turn's profile (`profile_of` its session) and its session's context."""

    def predict(turns: Sequence[Turn], on_reply: ReplyCallback | None = None) -> list[str]:
        replies = []
        for index, turn in enumerate(turns):
            key = (turn.persona_id, turn.session_id)
            profile = profile_of(key)
            reply = answer_text(profile_settings(profile, metas.get(key))) if profile else NO_ANSWER
            if on_reply is not None:
                on_reply(index, reply)
            replies.append(reply)
        return replies

    return predict


def evaluate_profile_answers(
    settings: EvalConfig,
    scope: Scope,
    out: Path,
    arm: str = PROFILE_ANSWER_ARM,
    *,
    profiles_file: Path | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the profiles of `profiles_file` (`routines mine`), or for new users those grown
    from the sessions seen (`profile.source=growing`), as the arm's replies; written like
    `evaluate_arm`'s run, so the report compares it with the language-model arms."""
    turns, _, growing = turns_and_profile_texts(settings, scope, None, profiles_file)
    if growing is not None:
        profile_of = growing.profiles.get
    else:
        if profiles_file is None:
            raise AdaptCommandError("the mined-profile arm answers from profiles: pass --profiles "
                                    "FILE (profiles.json of `routines mine`), or for new users "
                                    "profile.source=growing")
        profiles = read_profiles(profiles_file)
        profile_of = lambda key: profiles.get(key[0])  # noqa: E731
    predictor = profile_predictor(profile_of, session_metas(scope, settings.evaluation.split))
    return run_evaluation(turns, predictor, settings, out,
                          run_info(scope, arm, profiles_identity(profiles_file)), force=force,
                          show_progress=show_progress,
                          breakdowns=growing.breakdowns if growing else None)
