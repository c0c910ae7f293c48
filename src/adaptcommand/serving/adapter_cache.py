"""Which adapter serves a request, and an LRU cache of LoRA adapters on one PeftModel.

The registry reads the adapters directory on every lookup (a stat or two), so an adapter written
while the server runs is served at once and a deleted one stops being offered. Names must match a
strict regex and resolve to a direct child of the directory: a request can never make the
server open a path it chose. Only safetensors adapters are loaded (`models.adapters`).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from peft import PeftModel
from safetensors import SafetensorError, safe_open
from transformers import PreTrainedModel

from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_NAME,
    ADAPTER_WEIGHTS,
    UNIFIED,
    is_adapter_dir,
)

log = logging.getLogger(__name__)

BASE_ID = "base"  # what responses and /v1/models call "no adapter" (PEFT says __base__)
PERSONA_ID = ADAPTER_NAME  # no dots: no traversal tricks, and valid PEFT module keys


class InvalidUserError(AdaptCommandError):
    """A `user` that cannot be a persona id (bad characters, path syntax, too long)."""


@dataclass(frozen=True)
class Selection:
    """The adapter chosen for a request; `path` is None for the base model."""

    adapter: str
    path: Path | None


class AdapterRegistry:
    """Maps persona ids to adapter directories under one root, always from the live directory,
    plus the names loaded (any directory under the root) or unloaded at runtime (vLLM's
    load_lora_adapter / unload_lora_adapter)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise AdaptCommandError(f"adapters directory not found: {root}")
        self._added: dict[str, Path] = {}
        self._removed: set[str] = set()

    def path_of(self, name: str) -> Path | None:
        """The adapter directory for `name`, or None. A directory holding only pickled weights
        raises (refused, never loaded); a symlink leading outside the root counts as absent."""
        if not PERSONA_ID.fullmatch(name):
            raise InvalidUserError(
                f"invalid persona id {name[:64]!r}: expected {PERSONA_ID.pattern}"
            )
        if name in self._removed:
            return None
        path = self._added.get(name, self.root / name)
        if not path.is_dir() or not path.resolve().is_relative_to(self.root):
            return None
        return path if is_adapter_dir(path) else None

    def select(self, user: str | None) -> Selection:
        """The user's own adapter, else `unified` when present, else the base model."""
        own = self.path_of(user) if user else None
        if own is not None:
            return Selection(user, own)
        unified = self.path_of(UNIFIED)
        return Selection(UNIFIED, unified) if unified else Selection(BASE_ID, None)

    def available(self) -> list[str]:
        """Servable adapter names, sorted; refused or malformed directories are left out."""
        names = []
        for name in sorted({child.name for child in self.root.iterdir()} | set(self._added)):
            try:
                if self.path_of(name) is not None:
                    names.append(name)
            except AdaptCommandError:
                continue
        return names

    def add(self, name: str, location: str) -> Path:
        """Serve the adapter directory `location` (under the root; relative to it) as `name`.
        Raises InvalidUserError for a name or path the server will not take."""
        if not PERSONA_ID.fullmatch(name):
            raise InvalidUserError(f"invalid adapter name {name[:64]!r}: expected "
                                   f"{PERSONA_ID.pattern}")
        path = (self.root / location).resolve()  # an absolute location replaces the root
        if path == self.root or not path.is_relative_to(self.root):
            raise InvalidUserError("lora_path must be a directory under the adapters directory")
        try:
            loadable = path.is_dir() and is_adapter_dir(path)
            if loadable:
                check_loadable(path)
        except AdaptCommandError as exc:
            raise InvalidUserError(f"lora_path is not a servable adapter: {exc}") from None
        if not loadable:
            raise InvalidUserError("lora_path is not a PEFT adapter directory")
        self._removed.discard(name)
        if path != self.root / name:
            self._added[name] = path
        return path

    def remove(self, name: str) -> bool:
        """Stop serving `name` (until added again); False when it was not servable."""
        servable = self.path_of(name) is not None
        self._added.pop(name, None)
        self._removed.add(name)
        return servable


def _stamp(path: Path) -> tuple[int, ...]:
    """Identity of an adapter's weights file, so a rewritten adapter gets reloaded (ctime too:
    a copy may preserve mtime, never ctime)."""
    stat = (path / ADAPTER_WEIGHTS).stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size


class AdapterCache:
    """At most `capacity` LoRA adapters loaded on one PeftModel, least recently used evicted.

    Not thread-safe by design: only the batcher's single worker thread calls `activate`, between
    generations, so adapters never change under a running `generate`.
    """

    def __init__(self, base: PreTrainedModel, capacity: int) -> None:
        if capacity < 1:
            raise AdaptCommandError(f"cache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._base = base
        self._peft: PeftModel | None = None
        self._loaded: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    @property
    def model(self) -> PreTrainedModel | PeftModel:
        """The PeftModel while any adapter is loaded, else the bare base model."""
        return self._peft if self._peft is not None and self._loaded else self._base

    @property
    def loaded(self) -> list[str]:
        """Loaded adapter names, least recently used first."""
        return list(self._loaded)

    def activate(self, name: str, path: Path, keep: frozenset[str] = frozenset()) -> None:
        """Make `name` loaded and most recently used; evictions spare `keep` (the names the
        current batch needs). A failed load leaves no trace of `name`."""
        if self._loaded.get(name) == _stamp(path):
            self._loaded.move_to_end(name)
            return
        if name in self._loaded:
            self._evict(name)  # stale: the directory was rewritten since we loaded it
        self._make_room(keep - {name})
        try:
            self._load(name, path)
        except Exception:
            self._discard(name)
            raise

    def _load(self, name: str, path: Path) -> None:
        check_loadable(path)
        stamp = _stamp(path)
        if self._peft is None:
            self._peft = PeftModel.from_pretrained(self._base, str(path), adapter_name=name)
        else:
            self._peft.load_adapter(str(path), adapter_name=name)
        # PEFT's active adapter may be one we evicted; rows name their adapter, but it must exist.
        self._peft.set_adapter(name, inference_mode=True)
        self._peft.eval()
        self._loaded[name] = stamp
        log.info("loaded adapter %s", name)

    def _make_room(self, keep: frozenset[str]) -> None:
        """Evict least recently used adapters outside `keep` until one more fits."""
        for name in list(self._loaded):
            if len(self._loaded) < self.capacity:
                return
            if name not in keep:
                self._evict(name)

    def _evict(self, name: str) -> None:
        assert self._peft is not None
        with warnings.catch_warnings():  # PEFT re-points its active adapter; we name ours per row
            warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
            self._peft.delete_adapter(name)
        del self._loaded[name]
        log.info("unloaded adapter %s", name)

    def _discard(self, name: str) -> None:
        """Remove what a failed load left of `name` in the PeftModel."""
        self._loaded.pop(name, None)
        if self._peft is not None and name in self._peft.peft_config:
            self._peft.delete_adapter(name)


def check_loadable(path: Path) -> None:
    """Refuse what would fail half-way through PEFT's loading, which edits the model in place:
    a non-LoRA adapter (mixed batches exist for LoRA only) or an unreadable weights file."""
    try:
        config = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        with safe_open(str(path / ADAPTER_WEIGHTS), framework="pt") as weights:
            weights.keys()
    except (OSError, ValueError, SafetensorError) as exc:
        raise AdaptCommandError(f"{path}: unreadable adapter ({exc})") from None
    found = config.get("peft_type") if isinstance(config, dict) else None
    if found != "LORA":
        raise AdaptCommandError(f"{path}: only LoRA adapters are served (peft_type {found!r})")
