"""Shared pytest fixtures."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

# Under pytest-xdist (`make test` runs `-n auto`), each worker gets its share of the cores, set
# before torch is imported: two workers with two threads each would fight over a 2-core machine.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))

# --- data stage: a small EdgeWisePersona three-file layout built in code ---------------------


def _source_session(session_id: int) -> dict:
    """A valid session; the user text carries stray whitespace for the cleaner to normalize."""
    return {
        "session_id": session_id,
        "meta": {"time_of_day": "evening", "day_of_week": "weekday", "sun_phase": "after_sunset",
                 "weather": "rainy", "outdoor_temp": "cold"},
        "messages": [
            {"role": "user", "text": f"  Set the lights  to\t{session_id % 100} please "},
            {"role": "assistant", "text": f"Lights set to {session_id % 100}."},
        ],
        "applied_routines": [0] if session_id % 2 else None,
    }


def _source_users(n_users: int = 2, n_sessions: int = 50) -> list[dict]:
    """Users as {character, routines, sessions}, the content of one line of each source file."""
    routine = {"triggers": {"time_of_day": "evening"},
               "actions": {"lights": {"brightness": 40, "color": "warm"}, "tv": None}}
    return [
        {"character": f"User {user}, calm and brief.", "routines": [routine],
         "sessions": [_source_session(s) for s in range(n_sessions)]}
        for user in range(n_users)
    ]


def _write_source_layout(directory: Path, users: list[dict]) -> Path:
    """Write characters/routines/sessions.jsonl (line i = user i) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in (("character", "characters"), ("routines", "routines"),
                      ("sessions", "sessions")):
        lines = [json.dumps({key: user[key]}) for user in users]
        (directory / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@pytest.fixture
def source_users() -> Callable[..., list[dict]]:
    """Factory `(n_users=2, n_sessions=50) -> users`; edit the dicts to make bad input."""
    return _source_users


@pytest.fixture
def write_source_layout() -> Callable[[Path, list[dict]], Path]:
    """Writer `(directory, users) -> directory` of the three-file source layout."""
    return _write_source_layout


SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "edgewisepersona_sample"


@pytest.fixture
def real_sample() -> Path:
    """The real EdgeWisePersona cold-start sample shipped in data/ (CC BY 4.0)."""
    return SAMPLE_DIR / "cold_start_dev.jsonl"


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared data directory of 3 synthetic personas x 6 sessions (read-only for tests)."""
    from adaptcommand.data.prepare import prepare_from_source
    from adaptcommand.data.synth import synthesize

    root = tmp_path_factory.mktemp("synthetic_data")
    synthesize(3, 6, 0, root / "raw")
    prepare_from_source(root / "raw", root / "data")
    return root / "data"
