"""A user's mined routines for `GET /v1/users/{id}/routines`, read from files on each request.

Where they come from (the outputs of `adaptcommand routines mine`, see CONTRACT in the routines
package): `--profiles FILE`, either `profiles.json` ({persona_id: UserProfile}) or
`routines.jsonl` (EdgeWisePersona layout, line i = persona_{i:03d}); else
`<adapters>/<persona_id>/profile.json` beside the user's adapter: one UserProfile, or the
profiles.json layout with that one persona (as training writes it). Only the
`routines` list is read, validated to the {triggers, actions} shape; other profile fields are
ignored so the server does not break when the miner adds some. `user_profile` reads the same
files for the prompt's profile line (`serving.profile`), adding the usual settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from adaptcommand.config import first_error
from adaptcommand.errors import DataError
from adaptcommand.fileio import read_jsonl
from adaptcommand.routines.profile import MinedRoutine, UserProfile

PROFILE_FILE = "profile.json"


class _Routine(BaseModel):
    """The part of a mined routine the endpoint returns; extra fields (support, ...) kept."""

    model_config = ConfigDict(extra="allow")
    triggers: dict[str, Any]
    actions: dict[str, Any]


class _Profile(BaseModel):
    model_config = ConfigDict(extra="allow")
    routines: list[_Routine]


class _PromptProfile(_Profile):
    """What a prompt's profile line reads: the routines and the usual settings."""

    common_settings: dict[str, dict[str, Any]] = {}


ProfileT = TypeVar("ProfileT", bound=_Profile)


def persona_of_line(line: int) -> str:
    """The persona id of line `line` (1-based) of an EdgeWisePersona-layout file."""
    return f"persona_{line - 1:03d}"


def user_routines(
    persona_id: str, adapters_dir: Path, profiles: Path | None
) -> list[dict[str, Any]] | None:
    """The persona's routines, or None when no file has them. A malformed file raises
    DataError naming the file, line and field (the server logs it: a 500 with an id)."""
    found = _find(persona_id, adapters_dir, profiles)
    if found is None:
        return None
    profile = _validate(_Profile, *found)
    return [routine.model_dump() for routine in profile.routines]


def user_profile(persona_id: str, adapters_dir: Path, profiles: Path | None) -> UserProfile | None:
    """The persona's user model for its prompts (routines and usual settings), from the same
    files as `user_routines`; None when no file has it. Fields the prompt does not use (support
    counts, sessions) may be absent, and null triggers and settings (routines.jsonl) are left
    out, as the miner leaves them out."""
    found = _find(persona_id, adapters_dir, profiles)
    if found is None:
        return None
    profile = _validate(_PromptProfile, *found)
    routines = [MinedRoutine(triggers=_set(routine.triggers),
                             actions={device: _set(values) for device, values
                                      in routine.actions.items() if values},
                             support=int((routine.model_extra or {}).get("support") or 0),
                             sessions=[])
                for routine in profile.routines]
    return UserProfile(persona_id=persona_id, sessions_used=0, routines=routines,
                       common_settings=profile.common_settings)


def _find(persona_id: str, adapters_dir: Path, profiles: Path | None
          ) -> tuple[Any, Path, int | None, str | None] | None:
    """(the persona's raw profile, file, line, field) or None when no file has it."""
    if profiles is None:
        path = adapters_dir / persona_id / PROFILE_FILE
        if not path.is_file():
            return None
        raw = _read_json(path)
        if isinstance(raw, dict) and "routines" not in raw and persona_id in raw:
            return raw[persona_id], path, None, persona_id  # training's {persona_id: profile}
        return raw, path, None, None
    if profiles.suffix == ".jsonl":
        for number, row in read_jsonl(profiles):
            if persona_of_line(number) == persona_id:
                return row, profiles, number, None
        return None
    table = _read_json(profiles)
    if not isinstance(table, dict):
        raise DataError("expected a JSON object of persona_id: profile", path=profiles)
    found = table.get(persona_id)
    return None if found is None else (found, profiles, None, persona_id)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None


def _validate(model: type[ProfileT], raw: Any, path: Path, line: int | None,
              field: str | None) -> ProfileT:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        where, message = first_error(exc)
        raise DataError(message, path=path, line=line,
                        field=f"{field}.{where}" if field else where) from None


def _set(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
