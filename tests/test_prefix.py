"""Prefix tuning (PEFT) adapters on tiny-random (a GQA Llama): shapes, training, saving, hybrid
starts, resume, and generation grouped by adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from typer.testing import CliRunner

from adaptcommand.cli import app
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.adapters import BASE, attach_adapters, discover_adapters
from adaptcommand.models.generation import GenerationSettings, generate
from adaptcommand.models.loading import load_model
from adaptcommand.training import recipes, runner
from adaptcommand.training.batching import Example, pack
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.engine import target_losses
from adaptcommand.training.export import CONFIG_FILE, RECORD_FILE, WEIGHTS_FILE, load_adapter
from adaptcommand.training.prefix import init_ids, prefix_hidden_states, wrap_prefix
from test_evaluation_adapters import predictions
from test_training_engine import single_thread  # noqa: F401  (autouse fixture)
from test_training_runner import (
    PERSONAS,
    crash_after_first_save,
    make_data,
    record_saves,
    tiny_config,
)

VIRTUAL = 4
CPU = torch.device("cpu")


def prefix_config(overrides: dict[str, object] | None = None) -> TrainingConfig:
    return tiny_config({"adapter.method": "prefix", "adapter.num_virtual_tokens": VIRTUAL,
                        "optimizer.epochs": 3, "optimizer.learning_rate": 3e-2}
                       | (overrides or {}))


def train(data: Path, out: Path, strategy: runner.Strategy = "per-user", **kwargs: object) -> dict:
    config = kwargs.pop("config", prefix_config())
    return recipes.run_training(strategy, config, data, out, show_progress=False, **kwargs)


def wrapped(seed: int = 0) -> tuple[PeftModel, torch.nn.Parameter]:
    """tiny-random with a random prefix; the base is identical for every call."""
    loaded = load_model("tiny-random", device="cpu")
    peft_model, _ = wrap_prefix(loaded.model, loaded.tokenizer, prefix_config())
    weight = peft_model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed)))
    return peft_model, weight


def examples(tokenizer, texts: list[tuple[str, str]]) -> list[Example]:
    """(prompt, reply) pairs with the loss on the reply only."""
    out = []
    for prompt, reply in texts:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(reply, add_special_tokens=False)["input_ids"]
        out.append(Example(tuple(p + r), tuple([-100] * len(p) + r)))
    return out


def last_logits(peft_model: PeftModel, ids: list[int]) -> torch.Tensor:
    """The training path's next-token logits after `ids`."""
    batch = pack([[Example(tuple(ids), tuple(ids))]], CPU)
    hidden = prefix_hidden_states(peft_model, batch)
    return peft_model.get_base_model().get_output_embeddings()(hidden[0, -1])


def test_prefix_is_sized_for_gqa_and_the_training_loss_is_peft_s() -> None:
    peft_model, weight = wrapped()
    config = peft_model.get_base_model().config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    assert kv_heads < heads  # tiny-random has GQA, like SmolLM2 (9 / 3)
    head_dim = config.hidden_size // heads
    cache = peft_model.get_prompt(3)
    assert tuple(cache.layers[0].keys.shape) == (3, kv_heads, VIRTUAL, head_dim)
    assert len(cache.layers) == config.num_hidden_layers
    tokenizer = load_model("tiny-random", device="cpu").tokenizer
    batch = pack([examples(tokenizer, [("Lights please?", " Lights at 40%."),
                                       ("Evening. Set the AC, and the TV too?", " AC 21.")])], CPU)
    hidden = prefix_hidden_states(peft_model, batch)
    sums, counts = target_losses(peft_model.get_base_model(), hidden, 0, batch, 1)
    ours = sums[0] / counts[0]
    peft = peft_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                      labels=batch.labels).loss
    assert torch.allclose(ours, peft, atol=1e-5)
    ours.backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_a_new_prefix_is_the_base_model_reading_real_text_first() -> None:
    loaded = load_model("tiny-random", device="cpu")
    ids = loaded.tokenizer("Evening, lights please?", add_special_tokens=False)["input_ids"]
    start = init_ids(loaded.tokenizer, prefix_config())
    assert len(start) == VIRTUAL
    with torch.no_grad():
        expected = loaded.model(input_ids=torch.tensor([start + ids])).logits[0, -1]
        peft_model, _ = wrap_prefix(loaded.model, loaded.tokenizer, prefix_config())
        assert torch.allclose(last_logits(peft_model, ids), expected, atol=1e-5)


def test_per_user_prefix_run_learns_and_saves_plain_peft_directories(tmp_path: Path,
                                                                     monkeypatch) -> None:
    data, out = make_data(tmp_path), tmp_path / "out"
    states: dict[str, dict[str, torch.Tensor]] = {}
    real_save = runner.save_adapter

    def spy(path, state, *args):
        states[Path(path).name] = state
        real_save(path, state, *args)

    lora = train(data, tmp_path / "lora", personas=PERSONAS[:1],
                 config=tiny_config({"optimizer.epochs": 1}))
    monkeypatch.setattr(runner, "save_adapter", spy)
    summary = train(data, out, personas=PERSONAS[:2])
    assert summary["adapters_done"] == 2 and list(states) == PERSONAS[:2]
    for persona, record in summary["adapters"].items():
        assert record.keys() == lora["adapters"]["persona_000"].keys()
        assert record["epochs_run"] == 3 and record["train_loss"][-1] < record["train_loss"][0]
        assert sorted(p.name for p in (out / persona).iterdir()) == sorted(
            [CONFIG_FILE, WEIGHTS_FILE, RECORD_FILE])
        weights = load_file(out / persona / WEIGHTS_FILE)
        assert list(weights) == ["prompt_embeddings"]
        assert torch.equal(weights["prompt_embeddings"], states[persona]["prompt_embeddings"])
    saved = json.loads((out / PERSONAS[0] / CONFIG_FILE).read_text())
    assert saved["peft_type"] == "PREFIX_TUNING" and saved["num_virtual_tokens"] == VIRTUAL
    assert saved["base_model_name_or_path"] == "tiny-random"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["adapter"]["method"] == "prefix"

    # The directory loads unchanged in PEFT and gives the logits of the in-training model.
    trained, weight = wrapped()
    with torch.no_grad():
        weight.copy_(states[PERSONAS[0]]["prompt_embeddings"])
    loaded = PeftModel.from_pretrained(load_model("tiny-random", device="cpu").model,
                                       str(out / PERSONAS[0]))
    ids = load_model("tiny-random", device="cpu").tokenizer("Evening, lights?")["input_ids"]
    with torch.no_grad():
        peft_logits = loaded(input_ids=torch.tensor([ids])).logits[0, -1]
        assert torch.allclose(last_logits(trained, ids), peft_logits, atol=1e-5)


def test_early_stopping_keeps_the_best_epoch_s_weights(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    constant = {"optimizer.lr_scheduler": "constant_with_warmup",
                "optimizer.warmup_ratio": 0.0}  # epochs-independent
    # min_delta so large that no later epoch counts as better: epoch 1 is best, stop after 2.
    stopped = train(data, tmp_path / "stopped", personas=PERSONAS[:1],
                    config=prefix_config({"optimizer.epochs": 3, "early_stopping.patience": 1,
                                         "early_stopping.min_delta": 100.0, **constant}))
    record = stopped["adapters"][PERSONAS[0]]
    assert (record["epochs_run"], record["best_epoch"], record["stopped_early"]) == (2, 1, True)
    train(data, tmp_path / "one", personas=PERSONAS[:1],
          config=prefix_config({"optimizer.epochs": 1, **constant}))
    assert ((tmp_path / "stopped" / PERSONAS[0] / WEIGHTS_FILE).read_bytes()
            == (tmp_path / "one" / PERSONAS[0] / WEIGHTS_FILE).read_bytes())


def test_hybrid_prefix_starts_from_the_unified_prefix(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    train(data, tmp_path / "unified", "unified", config=prefix_config({"optimizer.epochs": 1}))
    start = load_file(tmp_path / "unified" / "unified" / WEIGHTS_FILE)["prompt_embeddings"]
    # A vanishing learning rate: each hybrid adapter must still hold the unified weights.
    train(data, tmp_path / "hybrid", "hybrid", personas=PERSONAS[:2],
          init_from=tmp_path / "unified" / "unified",
          config=prefix_config({"optimizer.epochs": 1, "optimizer.learning_rate": 1e-12}))
    for persona in PERSONAS[:2]:
        weights = load_file(tmp_path / "hybrid" / persona / WEIGHTS_FILE)["prompt_embeddings"]
        assert torch.allclose(weights, start, atol=1e-6)
    fresh = train(data, tmp_path / "fresh", personas=PERSONAS[:1],
                  config=prefix_config({"optimizer.epochs": 1}))
    assert fresh["adapters_done"] == 1
    fresh_weights = load_file(tmp_path / "fresh" / PERSONAS[0] / WEIGHTS_FILE)["prompt_embeddings"]
    assert not torch.allclose(fresh_weights, start, atol=1e-2)

    train(data, tmp_path / "lora", "unified", config=tiny_config({"optimizer.epochs": 1}))
    with pytest.raises(AdaptCommandError, match="cannot start a method 'prefix' run"):
        load_adapter(tmp_path / "lora" / "unified", prefix_config())
    with pytest.raises(AdaptCommandError, match="num_virtual_tokens"):
        load_adapter(tmp_path / "unified" / "unified",
                     prefix_config({"adapter.num_virtual_tokens": 8}))


def test_rerun_skips_finished_prefix_adapters(tmp_path: Path, monkeypatch) -> None:
    data, out = make_data(tmp_path), tmp_path / "out"
    config = prefix_config({"optimizer.epochs": 1})
    saved = crash_after_first_save(monkeypatch)
    with pytest.raises(RuntimeError, match="killed"):
        train(data, out, config=config)
    first = (out / saved[0] / WEIGHTS_FILE).read_bytes()

    record_saves(monkeypatch, saved)
    summary = train(data, out, config=config)
    assert saved[1:] == PERSONAS[1:] and summary["adapters_done"] == 3
    assert (out / saved[0] / WEIGHTS_FILE).read_bytes() == first


def test_mixed_prefix_adapters_generate_as_each_alone(tmp_path: Path) -> None:
    data, out = make_data(tmp_path), tmp_path / "out"
    train(data, out, personas=PERSONAS[:2], config=prefix_config({"optimizer.epochs": 1,
                                                                  "optimizer.learning_rate": 0.3}))
    loaded = load_model("tiny-random", device="cpu")
    model = attach_adapters(loaded.model, discover_adapters(out))
    tokenizer = loaded.tokenizer
    prompts = ["Evening, lights please?", "And the AC?", "Set the TV to 20 and the lights on",
               "Hi", "Evening, lights please?"]
    names = [PERSONAS[0], PERSONAS[1], BASE, PERSONAS[0], PERSONAS[1]]
    settings = GenerationSettings(max_new_tokens=6, batch_size=2)
    mixed = generate(model, tokenizer, prompts, settings, adapter_names=names)
    alone = [generate(model, tokenizer, [p], settings, adapter_names=[n])[0]
             for p, n in zip(prompts, names, strict=True)]
    assert mixed == alone
    base = generate(load_model("tiny-random", device="cpu").model, tokenizer, prompts, settings)
    assert mixed[2] == base[2]  # no adapter: the base model
    assert mixed[0] != base[0] and mixed[4] != base[4] and mixed[0] != mixed[4]
    assert model.active_adapter == PERSONAS[0]  # generation leaves the active adapter alone

    # Generation sees what training saw: its first token is the training path's argmax.
    model.set_adapter(PERSONAS[1])
    ids = tokenizer(prompts[1], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = tokenizer.decode([int(last_logits(model, ids).argmax())]).strip()
    one = GenerationSettings(max_new_tokens=1)
    assert generate(model, tokenizer, [prompts[1]], one) == [expected]


def test_eval_cli_runs_prefix_adapters(tmp_path: Path) -> None:
    data, out = make_data(tmp_path), tmp_path / "adapters"
    train(data, out, personas=PERSONAS[:1], config=prefix_config({"optimizer.epochs": 1,
                                                                  "optimizer.learning_rate": 0.3}))
    common = ["--data", str(data), "--skip-assistant-turns", "0", "--model", "tiny-random",
              "--personas", ",".join(PERSONAS[:2]),
              "--set", "generation.max_new_tokens=6", "--set", "evaluation.bootstrap_resamples=20"]
    cli = CliRunner()
    base = cli.invoke(app, ["baseline", "--out", str(tmp_path / "base"), *common])
    assert base.exit_code == 0, base.output
    adapted = cli.invoke(app, ["eval", "--adapters", str(out), "--out", str(tmp_path / "eval"),
                               *common])
    assert adapted.exit_code == 0, adapted.output

    base_text, eval_text = predictions(tmp_path / "base"), predictions(tmp_path / "eval")
    assert eval_text[PERSONAS[0]] != base_text[PERSONAS[0]]
    assert eval_text[PERSONAS[1]] == base_text[PERSONAS[1]]  # no adapter: base model
