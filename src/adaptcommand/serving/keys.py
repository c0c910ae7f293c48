"""Per-user API keys: who may act for which users, from a keys file of hashed keys.

The keys file (JSON or YAML) lists `{sha256, users, admin, name}` entries: `sha256` is the hex
digest of the key (keys are random tokens, so a plain digest is enough and the file holds no
secret), `users` the persona ids the key may act for, `admin` whether it may act for everyone
and load or unload adapters. The file is read again when it changes (checked on each lookup,
one stat) or on SIGHUP, so keys rotate without a restart; a broken rewrite keeps the keys
already loaded and is logged, never an open server.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator

from adaptcommand.config import StrictModel, load_config
from adaptcommand.errors import AdaptCommandError
from adaptcommand.fileio import write_json_atomic
from adaptcommand.models.adapters import ADAPTER_NAME

log = logging.getLogger(__name__)


class KeyEntry(StrictModel):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the key.")
    users: list[str] = Field(default_factory=list, description="Persona ids it may act for.")
    admin: bool = Field(False, description="Acts for every user; loads/unloads adapters.")
    name: str | None = Field(None, description="A label for the server log.")

    @model_validator(mode="after")
    def _valid_users(self) -> KeyEntry:
        bad = [user for user in self.users if not ADAPTER_NAME.fullmatch(user)]
        if bad:
            raise ValueError(f"invalid persona id {bad[0][:64]!r}")
        return self


class KeysFile(StrictModel):
    keys: list[KeyEntry] = Field(min_length=1)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. `users` None: any user (an admin, the single --token, or a server
    without credentials)."""

    name: str
    admin: bool
    users: frozenset[str] | None

    def may_act_for(self, user: str) -> bool:
        return self.users is None or user in self.users


ANONYMOUS = Principal("anonymous", admin=False, users=None)  # no credentials configured
TOKEN_ADMIN = Principal("token", admin=True, users=None)  # the single --token


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """(key, its sha256): a fresh random key for the keys file."""
    key = f"ac-{secrets.token_urlsafe(32)}"
    return key, hash_key(key)


def add_key(path: str | Path, *, users: list[str], admin: bool, name: str | None) -> str:
    """Append a fresh key to the keys file (written atomically; a running server picks it up)
    and return the key, which is stored nowhere else."""
    path = Path(path)
    keys = load_config(path, KeysFile).keys if path.exists() else []
    key, digest = new_key()
    keys.append(KeyEntry(sha256=digest, users=users, admin=admin, name=name))
    write_json_atomic(path, KeysFile(keys=keys).model_dump(exclude_none=True))
    return key


class KeyStore:
    """The keys file as a digest -> Principal map, reloaded when the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, ...] | None = None
        self._principals: dict[str, Principal] = {}
        self.reload(strict=True)

    def reload(self, *, strict: bool = False) -> None:
        """Read the file again. `strict` (startup): a bad file raises; later a bad rewrite is
        logged and the previous keys stay in force."""
        try:
            stamp = self._file_stamp()
            parsed = load_config(self.path, KeysFile)
        except (AdaptCommandError, OSError) as exc:
            if strict:
                raise AdaptCommandError(f"keys file: {exc}") from None
            log.error("keys file not reloaded, previous keys kept: %s", exc)
            self._stamp = self._stamp_or_none()  # report one broken version once, not per call
            return
        self._principals = {
            entry.sha256: Principal(entry.name or entry.sha256[:8], entry.admin,
                                    None if entry.admin else frozenset(entry.users))
            for entry in parsed.keys
        }
        self._stamp = stamp
        log.info("keys file loaded: %d keys", len(self._principals))

    def lookup(self, key: str) -> Principal | None:
        """The principal of `key`, or None for an unknown key."""
        if self._stamp_or_none() not in (self._stamp, None):  # None: mid-replace or removed
            self.reload()
        return self._principals.get(hash_key(key))

    def _stamp_or_none(self) -> tuple[int, ...] | None:
        try:
            return self._file_stamp()
        except OSError:
            return None

    def _file_stamp(self) -> tuple[int, ...]:
        stat = self.path.stat()
        return stat.st_ino, stat.st_mtime_ns, stat.st_size
