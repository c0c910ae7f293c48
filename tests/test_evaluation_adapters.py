"""`eval` with adapters: discovery, routing, safetensors only, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.adapters import BASE, UNIFIED, adapter_router, discover_adapters
from adaptcommand.models.loading import load_model


def save_random_adapters(directory: Path, names: list[str]) -> None:
    """Adapters with random (non-identity) LoRA weights, saved the PEFT way (safetensors)."""
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    for seed, name in enumerate(names):
        torch.manual_seed(seed)
        model = get_peft_model(load_model("tiny-random", device="cpu").model, config)
        model.save_pretrained(directory / name)


def test_discovery_routing_and_fallbacks(tmp_path: Path) -> None:
    save_random_adapters(tmp_path, ["persona_000", UNIFIED])
    (tmp_path / "notes").mkdir()
    found = discover_adapters(tmp_path)
    assert set(found) == {"persona_000", UNIFIED}
    own, fallback = adapter_router(found)
    assert own == {"persona_000": "persona_000"} and fallback == UNIFIED
    assert adapter_router({"persona_000": found["persona_000"]})[1] == BASE
    assert discover_adapters(tmp_path / UNIFIED) == {UNIFIED: tmp_path / UNIFIED}


def test_pickled_adapters_are_refused(tmp_path: Path) -> None:
    save_random_adapters(tmp_path, ["persona_000"])
    weights = tmp_path / "persona_000" / "adapter_model.safetensors"
    weights.rename(weights.with_name("adapter_model.bin"))
    with pytest.raises(AdaptCommandError, match="only safetensors"):
        discover_adapters(tmp_path)


def test_missing_adapter_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AdaptCommandError, match="not found"):
        discover_adapters(tmp_path / "nope")
    with pytest.raises(AdaptCommandError, match="no adapters"):
        discover_adapters(tmp_path)


def test_eval_cli_routes_each_persona_to_its_adapter(tmp_path: Path, real_sample: Path) -> None:
    save_random_adapters(tmp_path / "adapters", ["persona_000", "persona_002"])
    common = ["--dialogues", str(real_sample), "--skip-assistant-turns", "0", "--model",
              "tiny-random", "--personas", "persona_000,persona_002,persona_004",
              "--set", "generation.max_new_tokens=6", "--set", "evaluation.bootstrap_resamples=20"]
    runner = CliRunner()
    base = runner.invoke(app, ["baseline", "--out", str(tmp_path / "base"), *common])
    assert base.exit_code == 0, base.output
    adapted = runner.invoke(app, ["eval", "--adapters", str(tmp_path / "adapters"), "--arm",
                                  "per-user", "--out", str(tmp_path / "eval"), *common])
    assert adapted.exit_code == 0, adapted.output

    base_text, eval_text = predictions(tmp_path / "base"), predictions(tmp_path / "eval")
    assert eval_text["persona_000"] != base_text["persona_000"]
    assert eval_text["persona_002"] != base_text["persona_002"]
    assert eval_text["persona_004"] == base_text["persona_004"]  # no adapter: base model
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["arm"] == "per-user" and results["n_adapters"] == 2
    cost = json.loads((tmp_path / "eval" / "training_cost.json").read_text())
    assert cost["n_adapters"] == 2 and cost["adapter_bytes"] > 0


def test_adapters_are_evaluated_with_the_prompt_they_were_trained_with(tmp_path: Path) -> None:
    from adaptcommand.evaluation.runs import adapter_settings

    manifest = {"strategy": "hybrid", "base_model": "tiny-random",
                "config": {"system_prompt": "Be brief.", "max_context_messages": 2}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    settings, arm = adapter_settings(tmp_path, {}, None)
    assert arm == "hybrid" and settings.model.name == "tiny-random"
    assert settings.prompt.system_prompt == "Be brief."
    assert settings.prompt.max_context_messages == 2
    overridden, _ = adapter_settings(tmp_path, {"prompt.max_context_messages": 4}, None)
    assert overridden.prompt.max_context_messages == 4


def predictions(run: Path) -> dict[str, list[str]]:
    """A run's predicted replies by persona, in file order."""
    by_persona: dict[str, list[str]] = {}
    for line in (run / "predictions.jsonl").read_text().splitlines():
        record = json.loads(line)
        by_persona.setdefault(record["persona_id"], []).append(record["prediction"])
    return by_persona
