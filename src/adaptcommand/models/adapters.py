"""Finding trained adapter directories and loading many of them onto one base model.

A directory of adapters is what `adaptcommand train` writes: `DIR/<persona_id>/` per user and/or
`DIR/unified/`; a directory that is itself one adapter serves every persona. Only safetensors
weights are accepted: pickled `adapter_model.bin` files are refused, never loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from peft import PeftModel
from transformers import PreTrainedModel

from adaptcommand.errors import AdaptCommandError, DataError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAINING_RECORD = "training_record.json"  # ours, beside PEFT's files: who the adapter learned
UNIFIED = "unified"
BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # no dots: PEFT module keys


def is_adapter_dir(path: Path) -> bool:
    """A loadable PEFT adapter directory; one with only pickled weights is an error."""
    if not (path / ADAPTER_CONFIG).is_file():
        return False
    if not (path / ADAPTER_WEIGHTS).is_file():
        raise AdaptCommandError(
            f"{path} has no {ADAPTER_WEIGHTS}; only safetensors adapters are loaded "
            "(pickled adapter_model.bin files are refused)"
        )
    return True


def discover_adapters(directory: str | Path) -> dict[str, Path]:
    """Adapter name -> directory. A directory that is itself an adapter is named `unified`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AdaptCommandError(f"adapter directory not found: {directory}")
    if is_adapter_dir(directory):
        return {UNIFIED: directory}
    found = {
        child.name: child
        for child in sorted(directory.iterdir())
        if child.is_dir() and ADAPTER_NAME.fullmatch(child.name) and is_adapter_dir(child)
    }
    if not found:
        raise AdaptCommandError(f"no adapters in {directory} (expected <persona_id>/ or "
                                f"{UNIFIED}/ directories with {ADAPTER_CONFIG})")
    return found


def attach_adapters(model: PreTrainedModel, adapters: Mapping[str, Path]) -> PeftModel:
    """One PeftModel carrying every adapter under its own name, in eval mode (mixed batches)."""
    names = list(adapters)
    peft_model = PeftModel.from_pretrained(model, str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        peft_model.load_adapter(str(adapters[name]), adapter_name=name)
    peft_model.eval()
    return peft_model


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The training record of an adapter directory, or None when it has none (e.g. an adapter
    trained elsewhere)."""
    record_path = Path(path) / TRAINING_RECORD
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", path=record_path) from None
    return record if isinstance(record, dict) else None


def trained_personas(path: Path) -> list[str]:
    """The personas an adapter directory was trained on, from its training record."""
    personas = (read_record(path) or {}).get("personas")
    return [p for p in personas if isinstance(p, str)] if isinstance(personas, list) else []


def adapter_router(adapters: Mapping[str, Path]) -> tuple[dict[str, str], str]:
    """(persona -> adapter name, fallback adapter name). A persona uses the adapter named after
    it, else the smallest group adapter trained on it (a cluster's); others use the unified
    adapter when there is one, else the base model."""
    routes: dict[str, str] = {}
    groups = sorted(((name, trained_personas(path)) for name, path in adapters.items()
                     if name != UNIFIED), key=lambda group: len(group[1]))
    for name, personas in groups:
        for persona in personas:
            routes.setdefault(persona, name)
    routes.update({name: name for name in adapters if name != UNIFIED})
    return routes, (UNIFIED if UNIFIED in adapters else BASE)
