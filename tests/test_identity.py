"""Run identity: fingerprints keep their values, and the resume check names what changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.identity import (
    check_resume,
    data_fingerprint,
    file_digest,
    read_manifest,
    run_key,
    write_manifest,
)


def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "dialogs_clean.jsonl").write_bytes(b'{"a": 1}\n')
    (tmp_path / "edgesplits.json").write_bytes(b'{"p": {}}')
    return tmp_path


def test_fingerprints_are_the_sha256_of_salt_then_files_in_order(tmp_path: Path) -> None:
    data = data_dir(tmp_path)
    plain = hashlib.sha256(b'{"a": 1}\n{"p": {}}').hexdigest()
    assert data_fingerprint(data) == plain  # the value runs recorded before this module
    assert data_fingerprint(data, salt="s|m") == hashlib.sha256(
        b's|m{"a": 1}\n{"p": {}}').hexdigest()
    assert file_digest(data / "edgesplits.json") == hashlib.sha256(b'{"p": {}}').hexdigest()
    with pytest.raises(DataError, match="missing.json: file not found"):
        file_digest(tmp_path / "missing.json")


def test_run_key_ignores_key_order() -> None:
    assert run_key({"a": 1, "b": [2]}) == run_key({"b": [2], "a": 1})
    assert run_key({"a": 1}) != run_key({"a": 2})


def test_manifest_round_trip_and_malformed(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    write_manifest(tmp_path, {"strategy": "unified"})
    assert read_manifest(tmp_path) == {"strategy": "unified"}
    (tmp_path / "manifest.json").write_text("{\n oops")
    with pytest.raises(DataError, match=r"manifest.json:2: malformed JSON"):
        read_manifest(tmp_path)


def test_resume_check_names_the_changed_fields(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    check_resume(path, {"k": 1}, "use another --out")  # nothing recorded yet: fine
    path.write_text(json.dumps({"k": 1, "data_fingerprint": "x", "free": 1}))
    fields = {"k": "k", "data_fingerprint": "data"}
    check_resume(path, {"k": 1, "data_fingerprint": "x", "free": 2}, "advice", fields)
    with pytest.raises(AdaptCommandError,
                       match=r"run.json: .* different data \(data_fingerprint\); use another"):
        check_resume(path, {"k": 1, "data_fingerprint": "y"}, "use another --out", fields)
    # Without fields every field of either record counts, including one only the old one has.
    with pytest.raises(AdaptCommandError, match="different data_fingerprint, free; advice"):
        check_resume(path, {"k": 1}, "advice")
    with pytest.raises(AdaptCommandError, match=r"different config or data \(free\); advice"):
        check_resume(path, {"k": 1, "data_fingerprint": "x"}, "advice", subject="config or data")
    path.write_text("{")
    with pytest.raises(AdaptCommandError, match="unreadable run record; advice"):
        check_resume(path, {"k": 1}, "advice")
