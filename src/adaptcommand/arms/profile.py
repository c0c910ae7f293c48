"""Profile arms at evaluation: each turn's profile/context text, built by the same function
training used (`models.profile_prompt.profile_text`), from each session's `meta` and the
persona's profile: `--profiles FILE` (`routines mine`'s profiles.json), else the
`<persona_id>/profile.json` written next to the adapters by a profile training run; or, for
new users (`profile.source=growing`), mined at evaluation from the sessions seen before each
evaluated one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptcommand.data.io import load_split, read_dialogues_file
from adaptcommand.data.schema import SessionMeta
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.personal_values import (
    Key,
    PersonalScores,
    PersonalTurn,
    personal_metrics,
    score_personal,
)
from adaptcommand.evaluation.predictions import record_key
from adaptcommand.evaluation.predictor import ProfileTexts
from adaptcommand.evaluation.turns import Turn, group_by_persona, session_id_of
from adaptcommand.models.profile_prompt import (
    PROFILE_FILE,
    profile_text,
    read_persona_profiles,
    uses_profile,
)
from adaptcommand.models.prompting import ProfileText
from adaptcommand.routines.mining import MiningSettings, mine_persona, mine_profiles
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
            f"profile=line (they carry <persona_id>/{PROFILE_FILE})"
            + ("; for new users, profile.source=growing mines them from the sessions seen"
               if settings.evaluation.split == "cold_start" else ""))
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


@dataclass(frozen=True)
class GrowingProfiles:
    """A new user's profile as it grows: for each evaluated cold_start session, the profile
    mined from the sessions seen before it, and how many those were."""

    profiles: dict[SessionKey, UserProfile]
    seen: dict[SessionKey, int]

    def breakdowns(self, records: Sequence[Mapping[str, Any]],
                   personal: Mapping[Key, PersonalTurn]) -> dict[str, Any]:
        """results.json's `by_sessions_seen` (`harness.Breakdowns`)."""
        return {"by_sessions_seen": by_sessions_seen(records, personal, self.seen)}


def growing_profiles(data_dir: Path, min_seen: int,
                     settings: MiningSettings | None = None) -> GrowingProfiles:
    """For each cold_start session of each new user with at least `min_seen` sessions seen
    before it: the profile mined from those sessions only (the user's cold_start_profile
    sessions, then their cold_start sessions up to the one before), as a deployed assistant
    would have it when the session starts."""
    settings = settings or MiningSettings()
    seen_first = load_split(data_dir, "cold_start_profile")
    profiles: dict[SessionKey, UserProfile] = {}
    seen: dict[SessionKey, int] = {}
    for pid, sessions in load_split(data_dir, "cold_start").items():
        history = list(seen_first.get(pid, []))
        for position, dialogue in enumerate(sessions):
            if len(history) >= min_seen:
                key = (pid, session_id_of(dialogue, position))
                profiles[key] = mine_persona(pid, history, settings)
                seen[key] = len(history)
            history.append(dialogue)
    return GrowingProfiles(profiles, seen)


def eval_profile_texts(settings: EvalConfig, scope: Any, adapters: Path | None,
                       profiles_file: Path | None, growing: GrowingProfiles | None
                       ) -> ProfileTexts | None:
    """The evaluated turns' profile/context texts (None when the prompts carry none): from the
    growing profiles when given, else from the train-split profiles (`load_profiles`)."""
    if not uses_profile_prompt(settings):
        return None
    if growing is not None:
        metas = session_metas(scope, settings.evaluation.split)
        return turn_texts(settings, metas, growing.profiles.get)
    return profile_texts(settings, scope, load_profiles(settings, adapters, profiles_file))


def probe_profiles(settings: EvalConfig, scope: Any, adapters: Path | None,
                   profiles_file: Path | None) -> dict[str, UserProfile]:
    """The profiles a profile arm's probe prompts read: as its evaluation's (`load_profiles`),
    or for a growing profile each new user's profile mined from their cold_start_profile
    sessions, the ones seen before any evaluated session (the probe has no session to grow
    to, and reads no evaluated one)."""
    if settings.profile.source != "growing":
        return load_profiles(settings, adapters, profiles_file)
    check_growing(settings, scope, profiles_file)
    seen = {pid: sessions for pid, sessions in load_split(scope.data, "cold_start_profile").items()
            if sessions}
    return mine_profiles(seen)


def check_growing(settings: EvalConfig, scope: Any, profiles_file: Path | None) -> None:
    """profile.source=growing mines from a prepared directory's cold-start splits."""
    if settings.evaluation.split != "cold_start" or scope.data is None:
        raise AdaptCommandError("profile.source=growing evaluates new users: it needs --data "
                                "(a `data prepare --cold-start-personas N` directory) and "
                                "evaluation.split=cold_start")
    if profiles_file is not None:
        raise AdaptCommandError("profile.source=growing mines each session's profile at "
                                "evaluation; --profiles is not read with it")


def by_sessions_seen(records: Sequence[Mapping[str, Any]],
                     personal: Mapping[Key, PersonalTurn],
                     seen: Mapping[SessionKey, int]) -> dict[str, dict[str, Any]]:
    """Personal-value metrics of the turns grouped by how many of the user's sessions the
    assistant had seen before the turn's session (the growing profile's learning curve)."""
    groups: dict[int, list[tuple[PersonalTurn, PersonalScores]]] = {}
    sessions: dict[int, set[SessionKey]] = {}
    for record in records:
        key = record_key(record)
        k, turn = seen[key[:2]], personal[key]
        groups.setdefault(k, []).append((turn, score_personal(record["prediction_actions"], turn)))
        sessions.setdefault(k, set()).add(key[:2])
    return {str(k): {"turns": len(scored), "sessions": len(sessions[k]), **personal_metrics(scored)}
            for k, scored in sorted(groups.items())}
