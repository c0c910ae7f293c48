"""The `routines mine` and `routines score` stages: files in, files out.

`mine_data` writes `OUT/routines.jsonl` (the EdgeWisePersona layout: line i = the i-th persona
of the data, schema-valid), `OUT/profiles.json` and `OUT/mining.json` (what was mined from
what). `score_files` scores a routines file against the truth, by default the routines that
`data prepare` kept in `dialogs_clean.jsonl`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptcommand.data.io import DIALOGUES_FILE, SplitName, load_split, read_json_as
from adaptcommand.errors import AdaptCommandError
from adaptcommand.fileio import write_json_atomic, write_jsonl_atomic
from adaptcommand.identity import data_fingerprint
from adaptcommand.routines.mining import MiningSettings, mine_profiles
from adaptcommand.routines.profile import (
    PROFILES_FILE,
    ROUTINES_FILE,
    UserProfile,
    to_edgewise_routines,
    write_profiles,
)
from adaptcommand.routines.scoring import read_routines_file, score_routines

MINING_FILE = "mining.json"
SCORES_FILE = "routine_scores.json"


def mine_data(
    data: str | Path, out: str | Path, *, split: SplitName = "train",
    settings: MiningSettings | None = None,
) -> dict[str, Any]:
    """Mine every persona of a `data prepare` directory from `split`; returns `mining.json`."""
    settings = settings or MiningSettings()
    started = time.perf_counter()
    dialogues = load_split(data, split)
    profiles = mine_profiles(dialogues, settings)
    summary = {
        "method": "miner", "data": str(Path(data).resolve()), "split": split,
        "settings": settings.model_dump(), "seconds": round(time.perf_counter() - started, 3),
        **counts(profiles),
    }
    return write_outputs(out, profiles, summary)


def counts(profiles: dict[str, UserProfile]) -> dict[str, Any]:
    """Personas, sessions and routines of a mining run (for `mining.json`)."""
    return {
        "personas": len(profiles),
        "personas_mined": [pid for pid, p in profiles.items() if p.sessions_used > 0],
        "sessions": sum(p.sessions_used for p in profiles.values()),
        "routines": sum(len(p.routines) for p in profiles.values()),
    }


def write_outputs(out: str | Path, profiles: dict[str, UserProfile],
                  summary: dict[str, Any]) -> dict[str, Any]:
    """`routines.jsonl`, `profiles.json` and `mining.json` (each written atomically); returns
    the summary as written, its `data` directory named by fingerprint as every stage does."""
    out = Path(out)
    write_jsonl_atomic(out / ROUTINES_FILE, (to_edgewise_routines(p) for p in profiles.values()))
    write_profiles(out / PROFILES_FILE, profiles)
    summary = {**summary, "data_fingerprint": data_fingerprint(summary["data"])}
    write_json_atomic(out / MINING_FILE, summary)
    return summary


def score_files(
    pred: str | Path, *, truth: str | Path | None = None, data: str | Path | None = None,
    personas: Sequence[str] | None = None, out: str | Path | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Score `pred` (routines.jsonl or profiles.json) against `truth` (a routines file) or the
    routines of the prepared `data`; without either, the data `mining.json` next to `pred`
    names. Personas: `personas`, else those `mining.json` says were mined from at least one
    session, else every persona of the truth. Writes the scores to `out` (default:
    `routine_scores.json` next to `pred`)."""
    pred = Path(pred)
    run = _mining_info(pred)
    if truth is None and data is None:
        if run is None:
            raise AdaptCommandError("give --truth FILE or --data DIR (no mining.json next to "
                                    f"{pred} says which data it was mined from)")
        data = run["data"]
    if truth is not None:
        true_routines = read_routines_file(truth)
    else:
        # The probe's reader (imported here: it brings the model stack, which mining needs not).
        from adaptcommand.evaluation.probe import load_routines
        from adaptcommand.evaluation.runs import Scope

        assert data is not None
        true_routines = load_routines(Scope(data=Path(data)))
    chosen = list(personas) if personas else (run or {}).get("personas_mined")
    if chosen is not None:
        unknown = sorted(set(chosen) - set(true_routines))
        if unknown:
            raise AdaptCommandError(f"persona(s) without true routines: {', '.join(unknown)}")
        true_routines = {pid: true_routines[pid] for pid in chosen}
    scores = score_routines(read_routines_file(pred), true_routines, seed=seed)
    source = truth if truth is not None else Path(str(data)) / DIALOGUES_FILE
    scores["inputs"] = {"pred": str(pred), "truth": str(source)}
    write_json_atomic(Path(out) if out is not None else pred.parent / SCORES_FILE, scores)
    return scores


def _mining_info(pred: Path) -> dict[str, Any] | None:
    path = pred.parent / MINING_FILE
    return read_json_as(path, dict[str, Any]) if path.is_file() else None
