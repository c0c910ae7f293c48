"""What an adapter directory tells an evaluation: its arm name, base model and training cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptcommand.evaluation.config import PROFILE_OPTIONS
from adaptcommand.identity import SUMMARY_FILE, read_manifest
from adaptcommand.models.adapters import ADAPTER_WEIGHTS


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def trained_with(directory: Path) -> tuple[str, dict[str, Any]]:
    """(strategy, eval overrides) from the run's manifest: the base model and the prompt the
    adapters were trained with, so they are evaluated on the prompt format they learned.
    Without a manifest: the directory's name and no overrides."""
    manifest = read_manifest(directory) or {}
    config = manifest.get("config", {})
    prompt = config.get("prompt", config)  # a run trained before the config had sections: flat
    overrides: dict[str, Any] = {}
    if manifest.get("base_model"):
        overrides["model.name"] = manifest["base_model"]
    for key in ("system_prompt", "max_context_messages", *PROFILE_OPTIONS):
        if key in prompt:
            overrides[f"prompt.{key}"] = prompt[key]
    return manifest.get("strategy") or Path(directory).name, overrides


def training_cost(directory: Path, adapters: dict[str, Path]) -> dict[str, Any]:
    """Training seconds (from the run's summary) and adapter bytes on disk, for the report."""
    summary = _read_json(Path(directory) / SUMMARY_FILE)
    records = summary.get("adapters", {})
    seconds = sum(float(r.get("seconds", 0.0)) for r in records.values()) if records else None
    return {
        "train_seconds": summary.get("wall_seconds", seconds),
        "adapter_bytes": sum((p / ADAPTER_WEIGHTS).stat().st_size for p in adapters.values()),
        "n_adapters": len(adapters),
    }
