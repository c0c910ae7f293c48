"""Adapter directories in PEFT's own format, so `PeftModel.from_pretrained(base, dir)` loads them.

A directory holds `adapter_config.json` (written by the PEFT config's `save_pretrained`),
`adapter_model.safetensors` (PEFT key names: multi_lora.peft_key for LoRA, `prompt_embeddings`
for prefix tuning, as PEFT's own `save_pretrained` writes them) and our `training_record.json`.
It is written through `atomic_dir`: it exists complete or not at all, which is what lets a killed
run resume by skipping the directories that exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftConfig, PrefixTuningConfig
from safetensors.torch import load_file, save_file
from torch import Tensor

from adaptcommand.crashpoints import pause_point
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.fileio import atomic_dir
from adaptcommand.models.adapters import TRAINING_RECORD as RECORD_FILE
from adaptcommand.training.config import LoraSettings, PrefixSettings, TrainingConfig

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"


def lora_config(config: TrainingConfig, base_model: str | None) -> LoraConfig:
    """The PEFT config describing adapters trained with `config`."""
    adapter = config.adapter
    return LoraConfig(r=adapter.r, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
                      target_modules=list(adapter.target_modules), task_type="CAUSAL_LM",
                      base_model_name_or_path=base_model)


def prefix_config(config: TrainingConfig, base_model: str | None) -> PrefixTuningConfig:
    """The PEFT config of prefix-tuning adapters trained with `config`; PEFT completes the
    model-dependent fields (layers, key/value heads, head size) when it wraps the model."""
    return PrefixTuningConfig(num_virtual_tokens=config.adapter.num_virtual_tokens,
                              task_type="CAUSAL_LM",
                              base_model_name_or_path=base_model)


def save_adapter(path: str | Path, state: dict[str, Tensor], peft_config: PeftConfig,
                 record: dict[str, Any]) -> None:
    """Write one adapter directory atomically (replacing an older one at `path`)."""
    with atomic_dir(path) as tmp:
        peft_config.save_pretrained(str(tmp))
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / WEIGHTS_FILE),
                  metadata={"format": "pt"})
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        pause_point("train.save")


def load_adapter(path: str | Path, config: TrainingConfig) -> dict[str, Tensor]:
    """Weights of a PEFT adapter directory to start from (hybrid runs); its method and shape
    must match `config`."""
    path = Path(path)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise DataError(f"not a PEFT adapter directory: {name} missing", path=path)
    saved = PeftConfig.from_pretrained(str(path))
    adapter = config.adapter
    if isinstance(saved, LoraConfig) and isinstance(adapter, LoraSettings):
        checks = [("r", saved.r, adapter.r), ("alpha", float(saved.lora_alpha), adapter.alpha),
                  ("target_modules", sorted(saved.target_modules or []),
                   sorted(adapter.target_modules))]
    elif isinstance(saved, PrefixTuningConfig) and isinstance(adapter, PrefixSettings):
        checks = [("num_virtual_tokens", saved.num_virtual_tokens, adapter.num_virtual_tokens)]
    else:
        raise AdaptCommandError(f"{path}: a {saved.peft_type} adapter cannot start a "
                                f"method {adapter.method!r} run; --init-from needs an adapter "
                                "trained with the same method")
    mismatched = [f"{field}: adapter {have!r}, config {want!r}"
                  for field, have, want in checks if have != want]
    if mismatched:
        raise AdaptCommandError(f"{path}: adapter does not match the training config ("
                                + "; ".join(mismatched) + ")")
    return load_file(str(path / WEIGHTS_FILE))
