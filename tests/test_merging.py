"""Merged adapters for new users: exact merge math, similarity, errors, and end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from typer.testing import CliRunner

from adaptcommand.arms.merged import (
    MergePlan,
    merge_adapters,
    merge_weights,
    persona_profiles,
    plan_merge,
    save_merged_adapters,
)
from adaptcommand.cli import app
from adaptcommand.data.schema import CleanDialogue
from adaptcommand.errors import AdaptCommandError
from adaptcommand.evaluation.embeddings import encode
from adaptcommand.models.adapters import TRAINING_RECORD, adapter_router, discover_adapters
from adaptcommand.models.loading import load_model

LAYERS = [f"base_model.model.model.layers.{i}.self_attn.{m}_proj" for i in (0, 1)
          for m in ("q", "v")]


@pytest.fixture(autouse=True)
def single_thread() -> None:
    torch.set_num_threads(1)


def save_adapter(directory: Path, seed: int, r: int, alpha: int) -> None:
    """A random (non-zero) LoRA on tiny-random, saved the PEFT way."""
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)
    get_peft_model(load_model("tiny-random", device="cpu").model, config).save_pretrained(
        directory)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    save_adapter(root / "a", 1, r=4, alpha=8)  # scaling 2
    save_adapter(root / "b", 2, r=2, alpha=6)  # scaling 3, another rank
    return {"a": root / "a", "b": root / "b"}


def delta(weights: dict[str, torch.Tensor], layer: str, scaling: float) -> torch.Tensor:
    return scaling * weights[f"{layer}.lora_B.weight"] @ weights[f"{layer}.lora_A.weight"]


def test_merged_delta_is_the_weighted_sum_of_the_scaled_deltas(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    save_merged_adapters("tiny-random", sources, [MergePlan("new", ["a", "b"], [0.5, 0.2],
                                                            [0.3, 0.7])], tmp_path)
    merged = load_file(tmp_path / "new" / "adapter_model.safetensors")
    config = json.loads((tmp_path / "new" / "adapter_config.json").read_text())
    assert config["r"] == 6 and config["lora_alpha"] == 6  # rank 4 + 2, scaling 1
    a, b = (load_file(sources[n] / "adapter_model.safetensors") for n in ("a", "b"))
    for layer in LAYERS:
        expected = 0.3 * delta(a, layer, 2.0) + 0.7 * delta(b, layer, 3.0)
        torch.testing.assert_close(delta(merged, layer, 1.0), expected, rtol=1e-6, atol=1e-7)
        assert expected.abs().max() > 1e-3  # the layers really are adapted
    record = json.loads((tmp_path / "new" / TRAINING_RECORD).read_text())
    assert record["personas"] == ["new"] and record["merged_from"] == ["a", "b"]
    assert record["weights"] == [0.3, 0.7] and record["seconds"] >= 0


def test_weights_one_and_zero_reproduce_the_first_adapter(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    save_merged_adapters("tiny-random", sources, [MergePlan("new", ["a", "b"], [0.9, -0.1],
                                                            [1.0, 0.0])], tmp_path)
    loaded = load_model("tiny-random", device="cpu")
    ids = loaded.tokenizer("Set the lights to 40 percent please.", return_tensors="pt").input_ids
    logits = {}
    for name, path in (("a", sources["a"]), ("merged", tmp_path / "new")):
        model = PeftModel.from_pretrained(load_model("tiny-random", device="cpu").model, path)
        with torch.no_grad():
            logits[name] = model.eval()(ids).logits
    with torch.no_grad():
        base = loaded.model(ids).logits
    assert not torch.allclose(logits["a"], base)  # the adapter changes the output
    assert torch.equal(logits["merged"], logits["a"])


def dialogue(pid: str, text: str) -> CleanDialogue:
    return CleanDialogue.model_validate({"persona_id": pid, "messages": [
        {"role": "assistant", "text": "Hello! How can I help?"},
        {"role": "user", "text": text}, {"role": "assistant", "text": "Done."},
        {"role": "user", "text": "Also play some heavy metal very loud."}]})


def test_similarity_picks_the_user_who_writes_alike() -> None:
    trained = {
        "lights": ["Dim the living room lights to 30 percent.", "Lights warm white please."],
        "music": ["Play some jazz on the kitchen speaker.", "Next song, a bit louder."],
        "climate": ["Set the AC to 21 degrees in cool mode.", "Fan speed two, please."],
    }
    new = ["Please dim the living room lights to 30%.", "Warm white lights, please."]
    by_persona = {pid: [dialogue(pid, t) for t in texts]
                  for pid, texts in {**trained, "new": new}.items()}
    profiles = persona_profiles(by_persona, encode)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in profiles.values())
    plan = plan_merge("new", profiles["new"], {p: profiles[p] for p in trained}, k=2)
    assert plan.sources[0] == "lights" and plan.similarities[0] > 0.8
    assert plan.similarities[0] > plan.similarities[1]
    assert plan.weights == merge_weights(plan.similarities)
    with pytest.raises(AdaptCommandError, match="--k 4 is larger than the 3 trained users"):
        plan_merge("new", profiles["new"], {p: profiles[p] for p in trained}, k=4)


def test_weights_clip_negative_similarities_and_sum_to_one() -> None:
    assert merge_weights([0.6, 0.2, -0.4]) == pytest.approx([0.75, 0.25, 0.0])
    assert merge_weights([-0.1, -0.3]) == [0.5, 0.5]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """Synthetic data with one held-out persona, per-user adapters trained 1 epoch."""
    from adaptcommand.data.prepare import prepare_from_source
    from adaptcommand.data.splits import SplitConfig
    from adaptcommand.data.synth import synthesize
    from adaptcommand.training.config import TrainingConfig
    from adaptcommand.training.recipes import run_training

    root = tmp_path_factory.mktemp("merge_e2e")
    synthesize(4, 10, 0, root / "raw")
    prepare_from_source(root / "raw", root / "data",
                        SplitConfig(cold_start_personas=1, cold_start_sessions=3))
    (cold,) = json.loads((root / "data" / "split_stats.json").read_text())["held_out_personas"]
    config = TrainingConfig().updated({"model.name": "tiny-random", "optimizer.epochs": 1,
                                       "optimizer.batch_size": 4, "data.max_length": 128,
                                       "early_stopping.patience": None})
    run_training("per-user", config, root / "data", root / "per_user", show_progress=False)
    return root / "data", root / "per_user", cold


def test_merge_then_eval_routes_the_new_user_to_its_merged_adapter(
    trained_run: tuple[Path, Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, per_user, cold = trained_run
    merged = tmp_path / "merged"
    result = CliRunner().invoke(app, ["merge", "--adapters", str(per_user), "--data", str(data),
                                      "--out", str(merged), "--k", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(discover_adapters(merged)) == [cold]
    record = json.loads((merged / cold / TRAINING_RECORD).read_text())
    assert record["personas"] == [cold] and len(record["merged_from"]) == 2
    assert cold not in record["merged_from"] and sum(record["weights"]) == pytest.approx(1)
    assert record["similarities"] == sorted(record["similarities"], reverse=True)
    manifest = json.loads((merged / "manifest.json").read_text())
    source = json.loads((per_user / "manifest.json").read_text())
    assert manifest["strategy"] == "merged" and manifest["base_model"] == "tiny-random"
    assert manifest["config"] == source["config"]
    summary = json.loads((merged / "training_summary.json").read_text())
    assert list(summary["adapters"]) == [cold] and summary["adapters_done"] == 1
    assert adapter_router(discover_adapters(merged))[0] == {cold: cold}

    from adaptcommand.evaluation import runs

    routed: dict[str, str] = {}
    make_predictor = runs.make_predictor

    def spy(loaded, settings, router=None, prompts=None, profiles=None):  # type: ignore[no-untyped-def]
        routed.update({pid: router(pid) for pid in (cold, "persona_xyz")})
        return make_predictor(loaded, settings, router, prompts, profiles)

    monkeypatch.setattr(runs, "make_predictor", spy)
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, [
        "eval", "--adapters", str(merged), "--data", str(data), "--out", str(out),
        "--set", "evaluation.split=cold_start", "--set", "generation.max_new_tokens=4",
        "--set", "evaluation.bootstrap_resamples=20"])
    assert result.exit_code == 0, result.output
    assert routed == {cold: cold, "persona_xyz": "__base__"}
    results = json.loads((out / "results.json").read_text())
    assert results["arm"] == "merged" and results["config"]["evaluation"]["split"] == "cold_start"
    predicted = {json.loads(line)["persona_id"]
                 for line in (out / "predictions.jsonl").read_text().splitlines()}
    assert predicted == {cold}
    assert json.loads((out / "training_cost.json").read_text())["n_adapters"] == 1


def test_merge_refusals(trained_run: tuple[Path, Path, str], tmp_path: Path,
                        sources: dict[str, Path]) -> None:
    data, per_user, cold = trained_run
    with pytest.raises(AdaptCommandError, match="unknown persona"):
        merge_adapters(per_user, data, tmp_path / "m", personas=["persona_999"])
    with pytest.raises(AdaptCommandError, match="--k 4 is larger than the 3 trained users"):
        merge_adapters(per_user, data, tmp_path / "m", k=4)
    no_adapters = tmp_path / "none"
    no_adapters.mkdir()
    (no_adapters / "manifest.json").write_text((per_user / "manifest.json").read_text())
    with pytest.raises(AdaptCommandError, match="no adapters in"):
        merge_adapters(no_adapters, data, tmp_path / "m")
    (no_adapters / "unrelated").symlink_to(sources["a"])  # an adapter, but of no trained persona
    with pytest.raises(AdaptCommandError, match="no trained per-user adapters"):
        merge_adapters(no_adapters, data, tmp_path / "m")
    assert not (tmp_path / "m").exists()
