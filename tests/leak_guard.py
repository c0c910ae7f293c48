"""The leak guard: blank what an arm must not read, and its output must not change.

Every arm, new ones included, calls `blank_data` with the splits it must not read and compares
what it produces from the original and the blanked copy (`assert_same_files` for files). The
matrix of what each arm may read is in `tests/test_leak_guard.py`.

Blanking replaces rather than deletes, so a reader that looked would see other content, and keeps
the structure (line count, persona, roles, number of messages and routines, edgesplits.json) so
an honest arm runs exactly as before:

- messages of the sessions in the blanked splits: other words, same roles;
- `routines`: same count, decoy triggers and actions (`keep_triggers`: decoy actions only, for
  the preference probe whose question is a routine's trigger context and whose answer key is
  the routine's actions);
- `applied_routines` removed, `character` replaced (a deployed assistant sees neither).

`session_summarization` cannot leak: `data prepare` drops it (`CleanDialogue` has no such field),
which `assert_no_summaries` checks.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from adaptcommand.data.io import DIALOGUES_FILE, load_splits

FORBIDDEN_FIELDS = ("routines", "applied_routines", "character")
DECOY_TRIGGERS = {"time_of_day": "night", "weather": "snowy"}
DECOY_ACTIONS = {"tv": {"volume": 7, "input_source": "AV"}}


def blank_data(data_dir: Path, out_dir: Path, *, splits: Iterable[str],
               fields: Iterable[str] = FORBIDDEN_FIELDS, keep_triggers: bool = False) -> Path:
    """A copy of the `data prepare` directory `data_dir` in `out_dir` with the messages of every
    session in `splits` and the `fields` of every session replaced (see the module docstring)."""
    shutil.copytree(data_dir, out_dir)
    fields = set(fields)
    blanked = {i for entry in load_splits(data_dir).values() for name in splits
               for i in entry.get(name, [])}
    lines = (data_dir / DIALOGUES_FILE).read_text(encoding="utf-8").splitlines()
    records = []
    for index, line in enumerate(lines):
        record = json.loads(line)
        if index in blanked:
            record["messages"] = [
                {"role": m["role"], "text": f"Blanked {m['role']} turn {index}.{j}: the "
                                            "garage door is painted blue."}
                for j, m in enumerate(record["messages"])]
        if "routines" in fields and record.get("routines"):
            record["routines"] = [
                {"triggers": routine["triggers"] if keep_triggers else DECOY_TRIGGERS,
                 "actions": DECOY_ACTIONS} for routine in record["routines"]]
        if "applied_routines" in fields:
            record.pop("applied_routines", None)
        if "character" in fields and "character" in record:
            record["character"] = "Blanked character sketch."
        records.append(json.dumps(record))
    (out_dir / DIALOGUES_FILE).write_text("\n".join(records) + "\n", encoding="utf-8")
    assert len(blanked) > 0 or not list(splits), "nothing was blanked: the guard would be vacuous"
    return out_dir


def assert_no_summaries(data_dir: Path) -> None:
    """Prepared data carries no session summaries, so no arm can read one."""
    for line in (data_dir / DIALOGUES_FILE).read_text(encoding="utf-8").splitlines():
        assert "session_summarization" not in json.loads(line)


def assert_same_files(first: Path, second: Path, pattern: str) -> list[str]:
    """The files matching `pattern` under two output directories: same names, same bytes;
    returns the names (fails on none, which would prove nothing)."""
    names = sorted(str(p.relative_to(first)) for p in first.glob(pattern))
    assert names, f"no {pattern} under {first}"
    assert names == sorted(str(p.relative_to(second)) for p in second.glob(pattern))
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    return names
