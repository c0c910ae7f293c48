"""`predictions.jsonl`: appended batch by batch so an interrupted evaluation resumes where it
stopped; rewritten in canonical order once complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptcommand.errors import DataError
from adaptcommand.fileio import dumps_line, write_jsonl_atomic

Key = tuple[str, int, int]


def record_key(record: dict[str, Any]) -> Key:
    return (record["persona_id"], int(record["session_id"]), int(record["turn_index"]))


def load_partial(path: Path) -> dict[Key, dict[str, Any]]:
    """Records already written by an earlier, interrupted run.

    Only the last line may be torn (the process was killed mid-write: it lacks its newline or
    does not parse): it is dropped and that turn is generated again. A bad line anywhere else
    is corruption, not an interruption: DataError naming the file and line.
    """
    done: dict[Key, dict[str, Any]] = {}
    if not path.is_file():
        return done
    lines = path.read_bytes().split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, else the torn tail
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            done[record_key(record)] = record
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError,
                ValueError) as exc:
            if number == len(lines) and not torn:
                break  # the last line, torn after its newline was already counted
            raise DataError(f"malformed prediction record ({type(exc).__name__}: {exc}); only a "
                            "torn last line is tolerated, remove the file (or use --force) to "
                            "start over", path=path, line=number) from None
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
