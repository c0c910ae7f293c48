"""A user's mined routines for `GET /v1/users/{id}/routines`, read from files on each request.

Where they come from (the outputs of `adaptcommand routines mine`, see CONTRACT in the routines
package): `--profiles FILE`, either `profiles.json` ({persona_id: UserProfile}) or
`routines.jsonl` (EdgeWisePersona layout, line i = persona_{i:03d}); else
`<adapters>/<persona_id>/profile.json` (one UserProfile) beside the user's adapter. Only the
`routines` list is read, validated to the {triggers, actions} shape; other profile fields are
ignored so the server does not break when the miner adds some.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from adaptcommand.config import first_error
from adaptcommand.errors import DataError
from adaptcommand.fileio import read_jsonl

PROFILE_FILE = "profile.json"


class _Routine(BaseModel):
    """The part of a mined routine the endpoint returns; extra fields (support, ...) kept."""

    model_config = ConfigDict(extra="allow")
    triggers: dict[str, Any]
    actions: dict[str, Any]


class _Profile(BaseModel):
    model_config = ConfigDict(extra="allow")
    routines: list[_Routine]


def persona_of_line(line: int) -> str:
    """The persona id of line `line` (1-based) of an EdgeWisePersona-layout file."""
    return f"persona_{line - 1:03d}"


def user_routines(
    persona_id: str, adapters_dir: Path, profiles: Path | None
) -> list[dict[str, Any]] | None:
    """The persona's routines, or None when no file has them. A malformed file raises
    DataError naming the file, line and field (the server logs it: a 500 with an id)."""
    if profiles is None:
        path = adapters_dir / persona_id / PROFILE_FILE
        return _routines(_read_json(path), path) if path.is_file() else None
    if profiles.suffix == ".jsonl":
        for number, row in read_jsonl(profiles):
            if persona_of_line(number) == persona_id:
                return _routines(row, profiles, line=number)
        return None
    table = _read_json(profiles)
    if not isinstance(table, dict):
        raise DataError("expected a JSON object of persona_id: profile", path=profiles)
    found = table.get(persona_id)
    return None if found is None else _routines(found, profiles, field=persona_id)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None


def _routines(raw: Any, path: Path, *, line: int | None = None,
              field: str | None = None) -> list[dict[str, Any]]:
    try:
        profile = _Profile.model_validate(raw)
    except ValidationError as exc:
        where, message = first_error(exc)
        raise DataError(message, path=path, line=line,
                        field=f"{field}.{where}" if field else where) from None
    return [routine.model_dump() for routine in profile.routines]
