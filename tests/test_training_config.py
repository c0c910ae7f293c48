"""The training config in sections: YAML or JSON, old flat keys still load (with one deprecation
naming the new places), `--set` takes both, and run identities stay what they were."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from adaptcommand.config import load_config
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.training.config import (
    LoraSettings,
    PrefixSettings,
    TrainingConfig,
    config_hash,
    dotted_overrides,
    method_overrides,
)
from adaptcommand.training.runner import pinned_config_hash

CONFIGS = Path(__file__).parents[1] / "configs"
# config_hash values of the flat TrainingConfig before the sections (measured on that code):
# a run made then resumes only if its settings hash the same now.
HASHES_BEFORE = [
    ({}, "ef1668cb56d5f6507ddd23462718a0414ca79add76854ccf7b772f03a5020a63"),
    ({"method": "prefix", "num_virtual_tokens": 4, "learning_rate": 0.01},
     "89be73268be55ef9220c2730c652bcc0af2797aba92e2ea603bf833c9c1bbe97"),
    ({"distill_examples_per_routine": 2, "profile": "line", "context_line": True, "clusters": 3},
     "a179b5a8861e8afcabe9662039b17f758d143800eaa8ff1700666d84fbf26093"),
    ({"adapters_per_step": 5, "system_prompt": None, "patience": None},
     "a6cb3044eb6c99034565bcdb2adb9f1179924067110f273abd53fd1e402ec482"),
]


def flat(raw: dict) -> TrainingConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return TrainingConfig.model_validate(raw)


def test_yaml_and_json_reference_files_are_the_same_defaults() -> None:
    from_yaml = load_config(CONFIGS / "lora_training.yaml", TrainingConfig)
    assert from_yaml == load_config(CONFIGS / "lora_training.json", TrainingConfig)
    assert from_yaml == TrainingConfig()
    assert yaml.safe_load((CONFIGS / "lora_training.yaml").read_text()) == json.loads(
        (CONFIGS / "lora_training.json").read_text())


@pytest.mark.parametrize(("raw", "before"), HASHES_BEFORE)
def test_the_same_settings_hash_as_before_the_sections(raw: dict, before: str) -> None:
    assert config_hash(flat(raw)) == before


def test_a_flat_config_loads_with_one_warning_naming_the_new_keys(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"model": "tiny-random", "epochs": 2, "r": 4, "clusters": 3,
                                "num_virtual_tokens": 7, "system_prompt": None}))
    with pytest.warns(DeprecationWarning) as caught:
        config = load_config(path, TrainingConfig)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "epochs -> optimizer.epochs" in message and "clusters -> cluster.k" in message
    assert config.model.name == "tiny-random" and config.optimizer.epochs == 2
    assert config.adapter == LoraSettings(r=4)  # num_virtual_tokens: ignored by LoRA, dropped
    assert config.cluster.k == 3 and config.prompt.system_prompt is None


def test_set_takes_dotted_and_flat_keys(tmp_path: Path) -> None:
    nested = load_config(CONFIGS / "lora_training.yaml", TrainingConfig,
                         {"optimizer.epochs": 3, "adapter.r": 2})
    with pytest.warns(DeprecationWarning, match="epochs -> optimizer.epochs"):
        old = dotted_overrides({"epochs": 3, "r": 2})
    assert load_config(CONFIGS / "lora_training.yaml", TrainingConfig, old) == nested
    assert nested.optimizer.epochs == 3 and nested.adapter.r == 2
    assert nested.model == TrainingConfig().model  # an override keeps the rest of the section


def test_an_adapter_section_holds_only_its_methods_fields(tmp_path: Path) -> None:
    # Switching method on the LoRA reference file: its LoRA fields sit at defaults, so they go.
    prefix = load_config(CONFIGS / "lora_training.json", TrainingConfig,
                         {"adapter.method": "prefix"})
    assert prefix.adapter == PrefixSettings()
    path = tmp_path / "mixed.yaml"
    path.write_text("adapter:\n  method: prefix\n  r: 4\n")
    with pytest.raises(DataError, match=r"mixed.yaml.*adapter.prefix.r.*unknown key"):
        load_config(path, TrainingConfig)


def test_updated_routes_dotted_keys_and_flat_ones_with_a_warning() -> None:
    config = TrainingConfig().updated({"optimizer.epochs": 2, "throughput.adapters_per_step": 3})
    assert config.optimizer.epochs == 2 and config.throughput.adapters_per_step == 3
    with pytest.warns(DeprecationWarning, match="adapters_per_step -> throughput.adapters_per"):
        copied = config.updated({"adapters_per_step": 1})
    assert copied.throughput.adapters_per_step == 1 and copied.optimizer.epochs == 2
    assert config.model_copy(update={"seed": 4}).seed == 4


def test_a_flat_field_name_is_no_attribute() -> None:
    """Flat names load (files, mappings, --set) but are not attributes: code reads sections."""
    with pytest.raises(AttributeError):
        _ = TrainingConfig().epochs
    with pytest.raises(AttributeError):
        _ = TrainingConfig().no_such_field
    with pytest.raises(AdaptCommandError, match="not TrainingConfig fields: epochs"):
        TrainingConfig().model_copy(update={"epochs": 3})  # else a silent no-op


def test_plan_overrides_drop_only_the_other_methods_adapter_fields() -> None:
    shared = {"adapter.r": 2, "adapter.num_virtual_tokens": 3, "optimizer.epochs": 1}
    prefix = TrainingConfig().updated(method_overrides(
        {**shared, "adapter.method": "prefix"}, "prefix"))
    assert prefix.adapter == PrefixSettings(num_virtual_tokens=3)
    assert prefix.optimizer.epochs == 1
    lora = TrainingConfig().updated(method_overrides(shared, "lora"))
    assert lora.adapter == LoraSettings(r=2)
    with pytest.raises(ValidationError, match="rr"):  # a typo is not dropped: it is refused
        TrainingConfig().updated(method_overrides({"adapter.rr": 2}, "lora"))
    with pytest.warns(DeprecationWarning, match="epochs -> optimizer.epochs"):
        assert method_overrides({"epochs": 2, "r": 2}, "prefix") == {"optimizer.epochs": 2}


def test_a_run_hashed_with_an_ignored_field_keeps_its_pinned_hash(tmp_path: Path) -> None:
    """Before the sections a LoRA run hashed num_virtual_tokens (ignored by LoRA): the same
    settings read today hash without it, and the run keeps the hash its manifest pinned."""
    old_config = {"model": "tiny-random", "epochs": 1, "r": 2, "num_virtual_tokens": 2}
    before = "3df84cac71172f78578055d1240918d81a33f51535f950bdcd52f35a97c32b80"
    (tmp_path / "manifest.json").write_text(json.dumps({"config": old_config,
                                                        "config_hash": before}))
    config = flat(old_config)
    assert config_hash(config) != before
    assert pinned_config_hash(tmp_path, config, config_hash(config)) == before
    other = config.model_copy(update={"seed": 1})
    assert pinned_config_hash(tmp_path, other, config_hash(other)) == config_hash(other)


def test_skipping_known_questions_is_hashed_when_set_and_needs_the_profile_line() -> None:
    line = TrainingConfig().updated({"prompt.profile": "line"})
    skipping = line.updated({"data.skip_known_questions": True})
    assert config_hash(skipping) != config_hash(line)  # the HASHES_BEFORE cases cover unset
    with pytest.raises(ValidationError, match="skip_known_questions needs prompt.profile"):
        TrainingConfig().updated({"data.skip_known_questions": True})
