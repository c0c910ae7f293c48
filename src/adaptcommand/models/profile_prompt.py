"""What a profile arm's prompt says about the user in one session: the session's context as a
sentence and/or the user's mined routine for that context as a profile line.

Training (`training.examples`) and evaluation (`arms.profile`) both call `profile_text`
with the same options, so an adapter learns exactly the prompt it is evaluated with. The
profile comes from `routines` (mined from the train split only, as a deployed assistant would
have it); the context is the session's `meta`, which a deployed assistant knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaptcommand.data.schema import CleanDialogue, SessionMeta, Triggers
from adaptcommand.evaluation.actions import asked_devices, extract_actions
from adaptcommand.models.prompting import (
    ProfileOptions,
    ProfileText,
    profile_line,
    trigger_sentence,
)
from adaptcommand.routines.profile import (
    UserProfile,
    read_profiles,
    routine_for_context,
    write_profiles,
)

PROFILE_FILE = "profile.json"  # OUT/<persona_id>/profile.json, next to the persona's adapter
# Bumped whenever `asks_for_known_settings` (or the extractor it reads replies with) picks other
# replies for the same data, so that stages trained with `data.skip_known_questions` are redone
# (demo stage fingerprints).
KNOWN_QUESTIONS_VERSION = 1


def uses_profile(options: ProfileOptions) -> bool:
    return options.profile != "none"


def profile_text(options: ProfileOptions, profile: UserProfile | None,
                 meta: SessionMeta | Mapping[str, Any] | None) -> ProfileText | None:
    """The extra prompt text of one session, or None when the options add nothing (or there is
    nothing to say: no context, no matching routine and no usual settings)."""
    context = (meta.model_dump() if isinstance(meta, SessionMeta) else dict(meta or {}))
    parts = []
    if options.context_line and context:
        parts.append(trigger_sentence(Triggers.model_validate(context)))
    if options.profile == "line" and profile is not None:
        routine = routine_for_context(profile, context)
        line = profile_line(routine.triggers if routine else {},
                            routine.actions if routine else {}, profile.common_settings)
        parts.append(line or "")
    text = " ".join(p for p in parts if p)
    return ProfileText(text, options.profile_placement) if text else None


def profile_settings(profile: UserProfile, meta: SessionMeta | Mapping[str, Any] | None
                     ) -> dict[str, dict[str, Any]]:
    """The settings the profile line states for this context: the mined routine for it, and
    the usual settings of every device the routine does not set."""
    routine = routine_for_context(profile, meta) if meta is not None else None
    actions = dict(routine.actions) if routine else {}
    return {**{d: s for d, s in profile.common_settings.items() if d not in actions}, **actions}


def asks_for_known_settings(dialogue: CleanDialogue, index: int,
                            profile: UserProfile | None) -> bool:
    """Whether the assistant message at `index` only asks the user to choose settings of
    devices the session's profile line states settings for (training.examples leaves such
    replies unlearned under `data.skip_known_questions`). Judged per device: the extractor
    does not say which of a device's settings a question asks for."""
    reply = dialogue.messages[index].text
    if profile is None or extract_actions(reply):
        return False
    asked = asked_devices(reply, [m.text for m in dialogue.messages[:index]])
    meta = dialogue.meta if dialogue.meta is not None else {}  # as profile_text reads it
    stated = {device for device, settings in profile_settings(profile, meta).items()
              if settings}
    return bool(asked) and asked <= stated


def write_persona_profiles(out_dir: Path, profiles: Mapping[str, UserProfile]) -> None:
    """`out_dir/<persona_id>/profile.json` for each persona (in the `profiles.json` layout, with
    that one persona), atomically; adapters are written into the same directories as a whole,
    so call this after they are saved."""
    for persona, profile in profiles.items():
        write_profiles(out_dir / persona / PROFILE_FILE, {persona: profile})


def read_persona_profiles(directory: Path) -> dict[str, UserProfile]:
    """persona_id -> profile of every `directory/<persona_id>/profile.json`."""
    profiles: dict[str, UserProfile] = {}
    for path in sorted(Path(directory).glob(f"*/{PROFILE_FILE}")):
        profiles.update(read_profiles(path))
    return profiles
