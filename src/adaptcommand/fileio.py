"""File helpers shared by every stage: line-located JSONL reading and atomic writes.

Every output is written to a temporary sibling and renamed into place, so an interrupted run
never leaves a half-written file or directory behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from adaptcommand.errors import DataError


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a bad line raises DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(f"malformed JSON ({exc.msg})", path=path, line=number) from None
            if not isinstance(obj, dict):
                raise DataError("expected a JSON object", path=path, line=number)
            yield number, obj


def dumps_line(obj: Any) -> str:
    """One canonical JSON line: stable key order of the object as built, UTF-8 kept."""
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | Path, rows: Iterable[Any]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(dumps_line(row) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; it replaces `path` only when the block succeeds.

    A reader of `path` sees the old directory or the new one, never neither: an existing
    directory is swapped with the new one in one step (Linux renameat2 RENAME_EXCHANGE), then
    the old one, now at the temporary name, is removed. Where the exchange is unsupported (not
    Linux, or a filesystem without it) the old directory is renamed aside and the new one
    renamed in: two renames, a gap of microseconds instead of a whole `rmtree`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())
        if path.is_dir() and not path.is_symlink():
            _swap_dirs(tmp, path)  # tmp now holds the old directory; `finally` removes it
        else:
            if path.exists() or path.is_symlink():
                path.unlink()
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> bool:
    """Atomically swap two paths (renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second),
                     _RENAME_EXCHANGE)
    if done == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # kernel or filesystem without the flag: use the fallback
    raise OSError(error, os.strerror(error), str(second))


def _swap_dirs(new: Path, path: Path) -> None:
    """Put directory `new` at `path` and the old `path` at `new`'s name."""
    if _exchange(new, path):
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.replace(path, aside / "old")
    os.replace(new, path)
    os.replace(aside / "old", new)
    aside.rmdir()


@functools.cache
def _renameat2() -> Any:
    """glibc's renameat2 (2.28+), typed, or None."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                             ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


def _umask() -> int:
    """The process umask (only readable by setting it), so temp files get normal permissions."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
