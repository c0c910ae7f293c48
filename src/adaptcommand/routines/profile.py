"""The user model: mined routines and usual settings per persona, and the `profiles.json` file.

A `UserProfile` is what the rest of the product knows about a user before any language model is
involved: their routines (trigger context -> device settings, with how many sessions back each
setting) and their most common settings outside routines. `routine_for_context` answers "what
does this user want now?" for a session's context.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaptcommand.config import StrictModel
from adaptcommand.data.io import read_json_as
from adaptcommand.data.schema import Routine, SessionMeta
from adaptcommand.fileio import write_json_atomic

PROFILES_FILE = "profiles.json"
ROUTINES_FILE = "routines.jsonl"


class MinedRoutine(StrictModel):
    """One routine as mined: triggers (set fields only), actions in the schema's compact form,
    how many sessions support it and which, and per setting ("device.param") its confidence
    (share of the routine's sessions that state the setting and agree, recency-weighted) and
    support (sessions that agree)."""

    triggers: dict[str, str]
    actions: dict[str, dict[str, Any]]
    support: int
    sessions: list[int]
    confidence: dict[str, float] = {}
    field_support: dict[str, int] = {}

    def to_routine(self) -> Routine:
        """The schema's `Routine` (validated: a mined routine is always schema-valid)."""
        return Routine.model_validate({"triggers": self.triggers, "actions": self.actions})


class UserProfile(StrictModel):
    """Everything mined about one persona from the sessions it was given."""

    persona_id: str
    sessions_used: int
    routines: list[MinedRoutine] = []
    common_settings: dict[str, dict[str, Any]] = {}


def _context(meta: SessionMeta | Mapping[str, Any]) -> dict[str, Any]:
    return meta.model_dump() if isinstance(meta, SessionMeta) else dict(meta)


def routine_for_context(
    profile: UserProfile, meta: SessionMeta | Mapping[str, Any]
) -> MinedRoutine | None:
    """The mined routine whose triggers all match `meta` (None when none does); when several
    match, the one with more triggers (the more specific), then the higher support."""
    context = _context(meta)
    matching = [routine for routine in profile.routines
                if all(context.get(field) == value for field, value in routine.triggers.items())]
    if not matching:
        return None
    return max(matching, key=lambda r: (len(r.triggers), r.support))


def to_edgewise_routines(profile: UserProfile) -> dict[str, list[dict[str, Any]]]:
    """One line of `routines.jsonl` in the EdgeWisePersona layout (every field present, unset
    ones null, exactly like the dataset's own file)."""
    return {"routines": [routine.to_routine().model_dump(mode="json")
                         for routine in profile.routines]}


def write_profiles(path: str | Path, profiles: Mapping[str, UserProfile]) -> None:
    """`profiles.json`: {persona_id: UserProfile}, written atomically."""
    write_json_atomic(path, {pid: profile.model_dump(mode="json")
                             for pid, profile in profiles.items()})


def read_profiles(path: str | Path) -> dict[str, UserProfile]:
    """`profiles.json` back as validated `UserProfile`s; a bad file is a located `DataError`."""
    return read_json_as(path, dict[str, UserProfile])
