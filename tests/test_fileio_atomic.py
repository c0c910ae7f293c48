"""atomic_dir: a directory replaced while a reader polls it is never missing or partial."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from adaptcommand import fileio
from adaptcommand.fileio import atomic_dir

FILES = ("adapter_config.json", "adapter_model.safetensors")
SIZE = 64 * 1024  # large enough that a half-written file would be seen half-written


def _write_version(path: Path, version: int) -> None:
    with atomic_dir(path) as tmp:
        for name in FILES:
            (tmp / name).write_bytes(bytes([version % 256]) * SIZE)


def _poll(path: Path, stop: threading.Event, problems: list[str], reads: list[int]) -> None:
    """What a server does between requests: look for the files, read them whole."""
    while not stop.is_set():
        for name in FILES:
            try:
                data = (path / name).read_bytes()
            except OSError as exc:
                problems.append(f"{name}: {exc.__class__.__name__}")
                continue
            if len(data) != SIZE or len(set(data)) != 1:
                problems.append(f"{name}: partial ({len(data)} bytes)")
        reads.append(1)


@pytest.mark.skipif(fileio._renameat2() is None, reason="needs renameat2 (Linux glibc 2.28+)")
def test_reader_never_sees_a_missing_or_partial_directory_during_replacement(tmp_path):
    target = tmp_path / "adapters" / "persona_000"
    _write_version(target, 0)
    stop, problems, reads = threading.Event(), [], []
    reader = threading.Thread(target=_poll, args=(target, stop, problems, reads))
    reader.start()
    try:
        for version in range(1, 150):
            _write_version(target, version)
    finally:
        stop.set()
        reader.join()
    assert problems == []
    assert len(reads) > 10  # the reader really polled during the replacements
    assert (target / FILES[0]).read_bytes()[:1] == bytes([149])
    assert sorted(p.name for p in target.parent.iterdir()) == ["persona_000"]  # no temp left


def test_fallback_without_exchange_still_replaces_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_exchange", lambda first, second: False)
    target = tmp_path / "out"
    _write_version(target, 1)
    _write_version(target, 2)
    assert (target / FILES[1]).read_bytes() == bytes([2]) * SIZE
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failed_block_keeps_the_old_directory(tmp_path):
    target = tmp_path / "out"
    _write_version(target, 1)
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / FILES[0]).write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert (target / FILES[0]).read_bytes() == bytes([1]) * SIZE
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_file_in_the_way_is_replaced_by_the_directory(tmp_path):
    target = tmp_path / "out"
    target.write_text("not a directory")
    _write_version(target, 3)
    assert target.is_dir() and (target / FILES[0]).read_bytes()[:1] == bytes([3])
