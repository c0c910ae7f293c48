"""Option parsing shared by several commands."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

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


@contextmanager
def deprecations_shown(source: object) -> Iterator[None]:
    """Print each deprecation raised inside (old flat config keys: where they went) once, on
    stderr, naming `source`; Python hides DeprecationWarnings outside `__main__`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        yield
    for warning in caught:
        if not issubclass(warning.category, DeprecationWarning):
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    messages = dict.fromkeys(str(w.message) for w in caught
                             if issubclass(w.category, DeprecationWarning))
    for message in messages:
        Console(stderr=True).print(f"[yellow]{source}: {message}[/]", highlight=False,
                                   soft_wrap=True)
