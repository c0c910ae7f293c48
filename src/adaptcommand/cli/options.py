"""Option parsing shared by several commands."""

from __future__ import annotations

import json
from typing import Any

from adaptcommand.errors import AdaptCommandError


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs; values are read as JSON when they parse (numbers, true, null)."""
    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise AdaptCommandError(f"--set expects key=value, got {pair!r}")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return overrides


def parse_csv(value: str | None) -> list[str] | None:
    """A comma-separated option (e.g. --personas a,b) as a list; None when not given."""
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]
