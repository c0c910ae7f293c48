"""Profile arms at evaluation: each turn's profile/context text, built by the same function
training used (`models.profile_prompt.profile_text`), from each session's `meta` and the
persona's profile: `--profiles FILE` (`routines mine`'s profiles.json), else the
`<persona_id>/profile.json` written next to the adapters by a profile training run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from adaptcommand.data.io import load_split, read_dialogues_file
from adaptcommand.data.schema import SessionMeta
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.predictor import ProfileTexts
from adaptcommand.evaluation.turns import Turn, group_by_persona, session_id_of
from adaptcommand.models.profile_prompt import (
    PROFILE_FILE,
    profile_text,
    read_persona_profiles,
    uses_profile,
)
from adaptcommand.models.prompting import ProfileText
from adaptcommand.routines.profile import UserProfile, read_profiles

PROFILE_ARM_SUFFIX = "+profile"
Meta = SessionMeta | Mapping[str, Any] | None


def uses_profile_prompt(settings: EvalConfig) -> bool:
    """Whether the prompts carry a profile line or a context sentence."""
    return uses_profile(settings.prompt) or settings.prompt.context_line


def session_metas(scope: Any, split: str) -> dict[tuple[str, int], SessionMeta | None]:
    """(persona, session id) -> the session's context, for the sessions `scope` evaluates."""
    if scope.dialogues is not None:
        by_persona = group_by_persona(read_dialogues_file(scope.dialogues))
    else:
        by_persona = load_split(scope.data, split)
    return {(pid, session_id_of(dialogue, position)): dialogue.meta
            for pid, dialogues in by_persona.items()
            for position, dialogue in enumerate(dialogues)}


def load_profiles(settings: EvalConfig, adapters: Path | None,
                  profiles_file: Path | None) -> dict[str, UserProfile]:
    """The profiles the prompts render (none unless `prompt.profile` asks for them)."""
    if not uses_profile(settings.prompt):
        return {}
    if profiles_file is not None:
        return read_profiles(profiles_file)
    found = read_persona_profiles(adapters) if adapters is not None else {}
    if not found:
        raise AdaptCommandError(
            f"prompt.profile={settings.prompt.profile} needs the users' profiles: pass "
            f"--profiles FILE (profiles.json of `routines mine`), or adapters trained with "
            f"profile=line (they carry <persona_id>/{PROFILE_FILE})")
    return found


SessionKey = tuple[str, int]
"""(persona id, session id); the probe uses the routine index as its session id."""


def profile_texts(settings: EvalConfig, scope: Any, profiles: dict[str, UserProfile]
                  ) -> ProfileTexts:
    """Each turn's text from its session's meta and its persona's profile; a persona without a
    profile is refused (its prompts would silently differ from the others')."""
    return turn_texts(settings, session_metas(scope, settings.evaluation.split),
                      lambda key: profiles.get(key[0]))


def turn_texts(settings: EvalConfig, metas: Mapping[SessionKey, Meta],
               profile_of: Callable[[SessionKey], UserProfile | None]) -> ProfileTexts:
    """Each turn's text from its session's context and the profile `profile_of` gives that
    session (the persona's, or the one mined before the session for a growing profile); a
    profile prompt without a profile for a turn is refused."""

    def texts(turns: Sequence[Turn]) -> list[ProfileText | None]:
        keys = [(t.persona_id, t.session_id) for t in turns]
        found = [profile_of(key) for key in keys]
        missing = sorted({key[0] for key, profile in zip(keys, found, strict=True)
                          if profile is None})
        if missing and uses_profile(settings.prompt):
            raise AdaptCommandError(f"no profile for persona(s) {', '.join(missing[:5])}")
        return [profile_text(settings.prompt, profile, metas.get(key))
                for key, profile in zip(keys, found, strict=True)]

    return texts
