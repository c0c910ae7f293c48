"""Readers for the data stage's inputs and outputs; every failure is a located `DataError`.

Inputs: the EdgeWisePersona three-file layout (line i of each file describes user i, who becomes
`persona_{i:03d}`) and an already-cleaned dialogue JSONL. Outputs of `data prepare`, read back by
later stages: `load_split(data_dir, "train")` is the one call most of them need.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, NonNegativeInt, TypeAdapter, ValidationError

from adaptcommand.config import StrictModel, first_error
from adaptcommand.data.schema import Character, CleanDialogue, Routine, Session
from adaptcommand.errors import DataError
from adaptcommand.fileio import read_jsonl

SOURCE_FILES = ("characters.jsonl", "routines.jsonl", "sessions.jsonl")
DIALOGUES_FILE = "dialogs_clean.jsonl"
SPLITS_FILE = "edgesplits.json"
SPLIT_NAMES = ("train", "val", "test", "online", "cold_start")
SplitName = Literal["train", "val", "test", "online", "cold_start"]

RecordT = TypeVar("RecordT", bound=BaseModel)


class RoutinesLine(StrictModel):
    """One line of `routines.jsonl`."""

    routines: list[Routine]


class SessionsLine(StrictModel):
    """One line of `sessions.jsonl`; sessions are in time order."""

    sessions: list[Session]


class PersonaSplits(StrictModel):
    """One persona's entry in `edgesplits.json`: 0-based line indices into `dialogs_clean.jsonl`.

    `cold_start` is only written for a persona held out of all training: its first sessions, the
    only ones a brand-new user would have shown; its other splits are then empty.
    """

    train: list[NonNegativeInt]
    val: list[NonNegativeInt]
    test: list[NonNegativeInt]
    online: list[NonNegativeInt]
    cold_start: list[NonNegativeInt] = []


def persona_id(user_index: int) -> str:
    """The project's name for user `user_index` (its line in the three source files)."""
    return f"persona_{user_index:03d}"


def read_source_layout(source: str | Path) -> list[CleanDialogue]:
    """All sessions of the three-file layout as dialogues, in user order then time order.

    The whole input is validated here (schema, line alignment, routine indices, unique session
    ids), so a caller that gets a list back can write its outputs without failing half-way.
    """
    source = Path(source)
    if not source.is_dir():
        raise DataError("source directory not found", path=source)
    characters, routines, sessions = (
        _read_records(source / name, model)
        for name, model in zip(SOURCE_FILES, (Character, RoutinesLine, SessionsLine), strict=True)
    )
    _check_aligned(source, [characters, routines, sessions])
    dialogues: list[CleanDialogue] = []
    for index, ((_, who), (_, habits), (line, history)) in enumerate(
        zip(characters, routines, sessions, strict=True)
    ):
        _check_sessions(history.sessions, len(habits.routines), source / SOURCE_FILES[2], line)
        dialogues.extend(
            CleanDialogue(
                persona_id=persona_id(index),
                session_id=session.session_id,
                character=who.character,
                routines=habits.routines,
                meta=session.meta,
                messages=session.messages,
                applied_routines=session.applied_routines,
            )
            for session in history.sessions
        )
    return dialogues


def read_dialogues_file(path: str | Path) -> list[CleanDialogue]:
    """An already-cleaned dialogue JSONL (`CleanDialogue` per line), in file order.

    File order is taken as time order within a persona; `session_id`, when given, must be unique
    within its persona.
    """
    records = _read_records(Path(path), CleanDialogue)
    seen: dict[tuple[str, int], int] = {}
    for line, dialogue in records:
        if dialogue.session_id is None:
            continue
        key = (dialogue.persona_id, dialogue.session_id)
        if key in seen:
            raise DataError(
                f"duplicate session_id {dialogue.session_id} for {dialogue.persona_id} "
                f"(first at line {seen[key]})",
                path=path, line=line, field="session_id",
            )
        seen[key] = line
    return [dialogue for _, dialogue in records]


def load_dialogues(data_dir: str | Path) -> list[CleanDialogue]:
    """`DIR/dialogs_clean.jsonl` as written by `data prepare`; list index = line index."""
    return read_dialogues_file(Path(data_dir) / DIALOGUES_FILE)


def load_splits(data_dir: str | Path) -> dict[str, dict[str, list[int]]]:
    """`DIR/edgesplits.json`: persona_id -> {train, val, test, online, cold_start} line indices
    (`cold_start` is [] for every persona that was not held out)."""
    parsed = read_json_as(Path(data_dir) / SPLITS_FILE, dict[str, PersonaSplits])
    return {pid: entry.model_dump() for pid, entry in parsed.items()}


def read_json_as(path: str | Path, type_: Any) -> Any:
    """A JSON file validated as `type_` (e.g. `dict[str, Model]`); any failure is a located
    `DataError` (missing file, malformed JSON with its line, the first invalid field)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None
    try:
        return TypeAdapter(type_).validate_python(raw)
    except ValidationError as exc:
        field, message = first_error(exc)
        raise DataError(message, path=path, field=field) from None


def select_split(
    dialogues: Sequence[CleanDialogue],
    splits: dict[str, dict[str, list[int]]],
    split: SplitName,
) -> dict[str, list[CleanDialogue]]:
    """persona_id -> that persona's dialogues in `split`, in time order (personas in file order)."""
    selected: dict[str, list[CleanDialogue]] = {}
    for pid, entry in splits.items():
        indices = entry.get(split, [])  # only held-out personas carry a `cold_start` key
        for position, index in enumerate(indices):
            if index >= len(dialogues):
                raise DataError(
                    f"index {index} out of range ({DIALOGUES_FILE} has {len(dialogues)} lines)",
                    path=SPLITS_FILE, field=f"{pid}.{split}.{position}",
                )
        selected[pid] = [dialogues[index] for index in indices]
    return selected


def load_split(data_dir: str | Path, split: SplitName) -> dict[str, list[CleanDialogue]]:
    """persona_id -> dialogues of `split` from a `data prepare` output directory."""
    return select_split(load_dialogues(data_dir), load_splits(data_dir), split)


def _read_records(path: Path, model: type[RecordT]) -> list[tuple[int, RecordT]]:
    """(line number, validated record) for every line; an empty file is an error too."""
    records = [(line, _validate(model, obj, path, line)) for line, obj in read_jsonl(path)]
    if not records:
        raise DataError("file is empty", path=path)
    return records


def _validate(model: type[RecordT], obj: dict, path: Path, line: int) -> RecordT:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        field, message = first_error(exc)
        raise DataError(message, path=path, line=line, field=field) from None


def _check_aligned(source: Path, files: list[list[tuple[int, BaseModel]]]) -> None:
    """Line i of each file is user i, so the files must hold the same number of records."""
    counts = [len(records) for records in files]
    if len(set(counts)) == 1:
        return
    longest = max(range(len(files)), key=lambda i: counts[i])
    shortest = min(range(len(files)), key=lambda i: counts[i])
    extra_line = files[longest][counts[shortest]][0]
    raise DataError(
        f"user {counts[shortest]} has no line in {SOURCE_FILES[shortest]} "
        f"({SOURCE_FILES[longest]} has {counts[longest]} records, "
        f"{SOURCE_FILES[shortest]} has {counts[shortest]}); the three files must be line-aligned",
        path=source / SOURCE_FILES[longest], line=extra_line,
    )


def _check_sessions(sessions: list[Session], n_routines: int, path: Path, line: int) -> None:
    """Cross-field rules the schema cannot state: unique ids, routine indices in range."""
    first_index: dict[int, int] = {}
    for s_index, session in enumerate(sessions):
        if session.session_id in first_index:
            raise DataError(
                f"duplicate session_id {session.session_id} "
                f"(also sessions.{first_index[session.session_id]})",
                path=path, line=line, field=f"sessions.{s_index}.session_id",
            )
        first_index[session.session_id] = s_index
        for r_index, routine in enumerate(session.applied_routines or []):
            if not 0 <= routine < n_routines:
                raise DataError(
                    f"routine index {routine} out of range (this user has {n_routines} routines)",
                    path=path, line=line, field=f"sessions.{s_index}.applied_routines.{r_index}",
                )
