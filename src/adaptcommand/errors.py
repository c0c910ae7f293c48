"""Errors the CLI turns into one clear message and a non-zero exit, instead of a traceback."""

from __future__ import annotations

from pathlib import Path


class AdaptCommandError(Exception):
    """A user-facing failure: bad input, a missing model, a refused resume."""


class DataError(AdaptCommandError):
    """Bad input data, located as precisely as we can: file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = message
        location = ":".join(str(p) for p in (self.path, line) if p is not None)
        field_part = f"field '{field}': " if field else ""
        head = f"{location}: " if location else ""
        super().__init__(f"{head}{field_part}{message}")


class ModelNotAvailableError(AdaptCommandError):
    """A model that is neither embedded, nor a local directory, nor in the offline cache."""
