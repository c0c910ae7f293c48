"""`predictions.jsonl`: appended batch by batch so an interrupted evaluation resumes where it
stopped; rewritten in canonical order once complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptcommand.fileio import dumps_line, write_jsonl_atomic

Key = tuple[str, int, int]


def record_key(record: dict[str, Any]) -> Key:
    return (record["persona_id"], int(record["session_id"]), int(record["turn_index"]))


def load_partial(path: Path) -> dict[Key, dict[str, Any]]:
    """Records already written by an earlier, interrupted run.

    A torn last line (the process was killed mid-write) is dropped: that turn is generated again.
    """
    done: dict[Key, dict[str, Any]] = {}
    if not path.is_file():
        return done
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
                done[record_key(record)] = record
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    return done


class PredictionLog:
    """Append-only log of finished predictions, flushed after every batch."""

    def __init__(self, path: Path, existing: dict[Key, dict[str, Any]]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Rewrite what survived so a torn tail never sits in the middle of the file.
        write_jsonl_atomic(path, existing.values())
        self._handle = path.open("a", encoding="utf-8")

    def append(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self._handle.write(dumps_line(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def finalize(path: Path, records: list[dict[str, Any]]) -> None:
    """The complete file, in turn order, replacing the append log in one rename."""
    write_jsonl_atomic(path, records)
