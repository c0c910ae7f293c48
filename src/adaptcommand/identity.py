"""What a run was made from, and the check that refuses to mix two different runs in one directory.

Every stage that writes a resumable output directory (train, merge, eval, probe) records its
identity there and compares it on the next run: the data fingerprint (a SHA-256 of the data
files), the manifest (`manifest.json` of an adapter directory), and the run key (a hash of the
checked fields, stamped into each adapter's record). Identify and routines name their data by
the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from adaptcommand.data.io import DIALOGUES_FILE, SPLITS_FILE
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.fileio import write_json_atomic

MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "training_summary.json"


def file_digest(*paths: str | Path, salt: str = "") -> str:
    """SHA-256 over `salt` then the bytes of `paths`, in order (read in 1 MiB blocks)."""
    digest = hashlib.sha256(salt.encode())
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError("file not found", path=path)
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def profiles_identity(profiles_file: Path | None) -> dict[str, str]:
    """What a run read its users' profiles from: the path and its bytes' digest, so a profiles
    file mined again in place is a different run, not a finished one."""
    if profiles_file is None:
        return {}
    return {"profiles": str(profiles_file), "profiles_sha256": file_digest(profiles_file)}


def data_files(data_dir: str | Path) -> tuple[Path, Path]:
    """The files of a prepared data directory that its fingerprint covers."""
    return Path(data_dir) / DIALOGUES_FILE, Path(data_dir) / SPLITS_FILE


def data_fingerprint(data_dir: str | Path, salt: str = "") -> str:
    """The fingerprint of a prepared data directory: its dialogues and splits."""
    return file_digest(*data_files(data_dir), salt=salt)


def library_versions() -> dict[str, str]:
    """The versions of the libraries that shape trained weights, pinned in every manifest."""
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}


def run_key(fields: Mapping[str, Any]) -> str:
    """SHA-256 of `fields` as canonical JSON: equal for equal settings, in any key order."""
    return hashlib.sha256(json.dumps(dict(fields), sort_keys=True).encode()).hexdigest()


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """`directory`'s manifest, None when it has none; malformed JSON is a located error."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None


def write_manifest(directory: str | Path, manifest: Mapping[str, Any]) -> None:
    write_json_atomic(Path(directory) / MANIFEST_FILE, manifest)


def changed_fields(previous: Mapping[str, Any], current: Mapping[str, Any],
                   fields: Iterable[str] | None = None) -> list[str]:
    """The fields (default: all of `current`'s) whose values differ between two identities."""
    return [f for f in (current if fields is None else fields)
            if previous.get(f) != current.get(f)]


def check_resume(path: Path, current: Mapping[str, Any], advice: str,
                 fields: Mapping[str, str] | None = None, subject: str | None = None) -> None:
    """Refuse to resume into the run recorded at `path` when any of `fields` (name -> the words
    for it; default: every field of either record) differs from `current`; an unreadable record
    is refused too. `advice` says what to do instead; `subject` names what differs in general
    (the differing fields follow in brackets)."""
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise AdaptCommandError(f"{path}: unreadable run record; {advice}") from None
    labels = dict(fields) if fields is not None else {f: f for f in {**previous, **current}}
    changed = changed_fields(previous, current, labels)
    if changed:
        words = ", ".join(label if label == f else f"{label} ({f})"
                          for f in changed for label in [labels[f]])
        if subject:
            words = f"{subject} ({words})"
        raise AdaptCommandError(f"{path}: {path.parent} was made with a different {words}; "
                                f"{advice}")
