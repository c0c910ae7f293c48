"""Config files (JSON or YAML) validated by pydantic; unknown keys are rejected by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from adaptcommand.errors import DataError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config and record: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(dotted field path, message) of a pydantic error, for one clear line to the user."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"]) or "<root>"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    return field, message


def load_config(
    path: str | Path, model: type[ConfigT], overrides: dict[str, Any] | None = None
) -> ConfigT:
    """Read a JSON/YAML config file, apply dotted-key overrides, validate against `model`."""
    path = Path(path)
    if not path.is_file():
        raise DataError("config file not found", path=path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) if path.suffix in {".yaml", ".yml"} else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"cannot parse config: {exc}", path=path) from None
    if not isinstance(raw, dict):
        raise DataError("config must be a mapping", path=path)
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        field, message = first_error(exc)
        raise DataError(message, path=path, field=field) from None


def set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating levels as needed."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value
