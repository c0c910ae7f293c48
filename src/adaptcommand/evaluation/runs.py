"""Building an evaluation run from CLI-level choices: config, turns and data fingerprint.

`baseline` and `eval` share all of this; they differ only in the predictor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptcommand.config import load_config, set_dotted
from adaptcommand.data.io import load_split, read_dialogues_file
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.turns import Turn, group_by_persona, select_turns


@dataclass(frozen=True)
class Scope:
    """Which turns a run evaluates, as the user chose them on the command line."""

    data: Path | None = None
    dialogues: Path | None = None
    personas: list[str] | None = None
    max_examples: int | None = None


def resolve_config(path: Path | None, overrides: dict[str, Any]) -> EvalConfig:
    """The config file (or the built-in reference defaults) with dotted overrides applied."""
    if path is not None:
        return load_config(path, EvalConfig, overrides)
    raw: dict[str, Any] = {}
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    return EvalConfig.model_validate(raw)


def load_turns(scope: Scope, config: EvalConfig) -> list[Turn]:
    """The turns of `scope`: a split of a prepared data directory, or a whole cleaned JSONL."""
    if (scope.data is None) == (scope.dialogues is None):
        raise AdaptCommandError("give exactly one of --data DIR or --dialogues FILE")
    if scope.dialogues is not None:
        by_persona = group_by_persona(read_dialogues_file(scope.dialogues))
    else:
        by_persona = load_split(scope.data, config.evaluation.split)
    return select_turns(
        by_persona, config.evaluation.skip_assistant_turns, scope.personas, scope.max_examples
    )


def data_fingerprint(scope: Scope) -> str:
    """SHA-256 of the evaluated files, so results name exactly the data they were computed on."""
    files = (
        [scope.dialogues]
        if scope.dialogues is not None
        else [scope.data / "dialogs_clean.jsonl", scope.data / "edgesplits.json"]
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def run_info(scope: Scope, arm: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What identifies a run besides its config: the arm, the data and the chosen scope."""
    return {
        "arm": arm,
        "data": str(scope.data or scope.dialogues),
        "data_fingerprint": data_fingerprint(scope),
        "personas": scope.personas,
        "max_examples": scope.max_examples,
        **(extra or {}),
    }
