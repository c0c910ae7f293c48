"""Epoch-end checkpoints of adapters still training, so a killed run resumes mid-adapter.

A unified or cluster adapter trains on everyone's data for hours; losing it to a kill would mean
starting over. At the end of every epoch that does not finish an adapter, the engine saves its
live state: current and best weights and the optimizer's tensors (AdamW moments and step) in
safetensors, the optimizer's hyper-parameters, the schedule's state and the record so far in
JSON. Nothing is pickled. Randomness needs no saved state: batch order is a function of
(seed, name, epoch) and dropout masks of (seed, name, step) (multi_lora), so a resumed adapter
continues exactly as if never stopped (byte-identical files on CPU, tested).

Layout: `OUT/.checkpoints/<adapter>/{tensors.safetensors, state.json}`, each directory written
atomically (`fileio.atomic_dir`). A checkpoint whose `key` (the run key and the adapter's
personas) differs from the current run's is ignored; the runner removes it once the adapter is
saved.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from adaptcommand.crashpoints import pause_point
from adaptcommand.errors import DataError
from adaptcommand.fileio import atomic_dir

CHECKPOINTS_DIR = ".checkpoints"
TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.json"


@dataclass
class Checkpoint:
    """One adapter's training state at an epoch end."""

    weights: dict[str, Tensor]  # PEFT keys, current
    best: dict[str, Tensor] | None  # PEFT keys, best epoch so far
    optimizer: dict[str, Any]  # torch `Optimizer.state_dict()`
    scheduler: dict[str, Any]  # torch `LRScheduler.state_dict()` (plain numbers)
    progress: dict[str, Any]  # train_loss, val_loss, steps, tokens, seconds


def _flatten(checkpoint: Checkpoint) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors for safetensors, everything else for JSON."""
    tensors = {f"weights/{k}": v for k, v in checkpoint.weights.items()}
    tensors |= {f"best/{k}": v for k, v in (checkpoint.best or {}).items()}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in checkpoint.optimizer["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    state = {"optimizer": {"param_groups": checkpoint.optimizer["param_groups"],
                           "scalars": scalars},
             "scheduler": checkpoint.scheduler, "progress": checkpoint.progress,
             "has_best": checkpoint.best is not None}
    return {k: v.contiguous() for k, v in tensors.items()}, state


def _unflatten(tensors: dict[str, Tensor], state: dict[str, Any]) -> Checkpoint:
    groups: dict[str, dict[str, Tensor]] = {"weights": {}, "best": {}}
    optimizer_state: dict[int, dict[str, Any]] = {
        int(index): dict(values) for index, values in state["optimizer"]["scalars"].items()}
    for name, tensor in tensors.items():
        kind, _, rest = name.partition("/")
        if kind == "optimizer":
            index, _, key = rest.partition("/")
            optimizer_state.setdefault(int(index), {})[key] = tensor
        else:
            groups[kind][rest] = tensor
    optimizer = {"state": optimizer_state, "param_groups": state["optimizer"]["param_groups"]}
    return Checkpoint(groups["weights"], groups["best"] if state["has_best"] else None,
                      optimizer, state["scheduler"], state["progress"])


class Checkpoints:
    """The checkpoint directories of one run; `keys[name]` identifies adapter `name`'s run."""

    def __init__(self, root: Path, keys: Mapping[str, str]) -> None:
        self.root = root
        self.keys = dict(keys)

    def load(self, name: str) -> Checkpoint | None:
        """This run's checkpoint of `name`, or None (none, or another run's)."""
        path = self.root / name
        if not (path / STATE_FILE).is_file():
            return None
        try:
            state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"malformed JSON ({exc.msg}); delete the directory to restart "
                            "this adapter", path=path / STATE_FILE) from None
        if state.get("key") != self.keys.get(name):
            return None
        return _unflatten(load_file(str(path / TENSORS_FILE)), state)

    def save(self, name: str, checkpoint: Checkpoint) -> None:
        """Replace `name`'s checkpoint, atomically."""
        tensors, state = _flatten(checkpoint)
        with atomic_dir(self.root / name) as tmp:
            save_file(tensors, str(tmp / TENSORS_FILE), metadata={"format": "pt"})
            text = json.dumps({"key": self.keys[name], **state}, indent=1)
            (tmp / STATE_FILE).write_text(text + "\n", encoding="utf-8")
            pause_point("train.checkpoint")

    def remove(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)
