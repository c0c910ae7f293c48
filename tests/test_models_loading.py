"""Model loading by name: tiny-random, local directories, offline hub ids, the conversion cache."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch

from adaptcommand.errors import ModelNotAvailableError
from adaptcommand.models import loading
from adaptcommand.models.loading import end_of_turn_ids, load_model, load_tokenizer


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random", device="cpu")


def test_tiny_random_is_a_small_llama_with_lora_targets(tiny):
    modules = dict(tiny.model.named_modules())
    attention = modules["model.layers.0.self_attn"]
    assert isinstance(attention.q_proj, torch.nn.Linear)
    assert isinstance(attention.v_proj, torch.nn.Linear)
    assert (attention.q_proj.out_features, attention.v_proj.out_features) == (64, 32)  # GQA
    assert tiny.model.config.num_hidden_layers == 2
    assert tiny.model.config.vocab_size == len(tiny.tokenizer) == 49152
    assert not tiny.model.training
    assert (tiny.device, tiny.dtype) == (torch.device("cpu"), torch.float32)


def test_tiny_random_has_the_real_chatml_tokenizer(tiny):
    tokenizer = tiny.tokenizer
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == "<|im_end|>"
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert tiny.end_of_turn_ids == [im_end, endoftext]


def test_tiny_random_init_is_seeded():
    def weights(seed: int) -> torch.Tensor:
        return load_model("tiny-random", seed=seed).model.model.layers[0].self_attn.q_proj.weight

    assert torch.equal(weights(3), weights(3))
    assert not torch.equal(weights(3), weights(4))


def test_dtype_override_is_applied():
    loaded = load_model("tiny-random", dtype="bfloat16")
    assert loaded.dtype is torch.bfloat16
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}


def test_local_directory_round_trip(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), device="cpu")
    ids = torch.tensor([[1, 520, 9531, 198, 2]])
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, tiny.model(ids).logits)
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.end_of_turn_ids == tiny.end_of_turn_ids
    assert loaded.name == str(tmp_path)


def test_unknown_hub_id_says_how_to_get_it():
    with pytest.raises(ModelNotAvailableError) as info:
        load_model("nobody-here/No-Such-Model-0.1B")
    message = str(info.value)
    assert "huggingface-cli download nobody-here/No-Such-Model-0.1B" in message
    assert "local model directory" in message


def test_missing_or_invalid_directory_is_reported(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="model directory not found"):
        load_tokenizer(str(tmp_path / "absent"))
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelNotAvailableError, match="not a model directory"):
        load_model(str(tmp_path))


def test_end_of_turn_ids_merge_generation_config_eos(tiny):
    tiny.model.generation_config.eos_token_id = [7, 2]
    try:
        assert end_of_turn_ids(tiny.tokenizer, tiny.model) == [2, 7, 0]
    finally:
        tiny.model.generation_config.eos_token_id = 2


def test_embedded_cache_dir_follows_env_and_gguf_identity(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAPTCOMMAND_CACHE", str(tmp_path))
    stat = loading.embedded_gguf_path().stat()
    expected = tmp_path / f"smollm2-135m-instruct-{stat.st_size}-{stat.st_mtime_ns}"
    assert loading.embedded_cache_dir() == expected


def test_build_once_builds_one_time_under_concurrency(tmp_path):
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        time.sleep(0.2)
        (out / "weights").write_text("ok")

    target = tmp_path / "model"
    threads = [threading.Thread(target=loading._build_once, args=(target, build)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert (target / "weights").read_text() == "ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]


def test_failed_build_leaves_nothing_and_is_retried(tmp_path):
    def broken(out: Path) -> None:
        (out / "partial").write_text("half")
        raise RuntimeError("disk full")

    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        loading._build_once(target, broken)
    assert not target.exists()
    assert loading._build_once(target, lambda out: (out / "w").write_text("ok")) == target
    assert (target / "w").read_text() == "ok"


GGUF_MARKER = {"dequantize": False, "gguf_file": "x.gguf", "quant_method": "gguf"}


def test_an_old_embedded_cache_loads_as_a_plain_trainable_model(tiny, monkeypatch, tmp_path):
    """Caches written before the fix declare the GGUF origin; transformers then treats the float
    checkpoint as quantized and a Trainer refuses to train it. Loading drops the marker."""
    from peft import LoraConfig, get_peft_model
    from transformers.trainer_utils import validate_quantization_for_training

    tiny.model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"quantization_config": GGUF_MARKER}))
    monkeypatch.setattr(loading, "ensure_embedded_checkpoint", lambda: tmp_path)
    loaded = load_model("embedded", device="cpu")
    assert not getattr(loaded.model, "is_quantized", False)
    assert not hasattr(loaded.model.config, "quantization_config")
    validate_quantization_for_training(get_peft_model(loaded.model, LoraConfig(r=2)))
    ids = torch.tensor([[1, 520, 9531, 198, 2]])
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, tiny.model(ids).logits)


def test_only_a_gguf_quantization_config_is_dropped():
    from transformers import LlamaConfig

    assert not hasattr(loading.drop_gguf_marker(
        LlamaConfig(quantization_config=GGUF_MARKER)), "quantization_config")
    other = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    assert loading.drop_gguf_marker(LlamaConfig(quantization_config=other)
                                    ).quantization_config == other


@pytest.mark.slow
def test_embedded_conversion_matches_the_gguf(monkeypatch, tmp_path):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("ADAPTCOMMAND_CACHE", str(tmp_path))
    converted = load_model("embedded", device="cpu")
    assert loading.ensure_embedded_checkpoint().parent.parent == tmp_path
    saved = json.loads((loading.ensure_embedded_checkpoint() / "config.json").read_text())
    assert "quantization_config" not in saved  # else a Trainer refuses the checkpoint
    gguf = loading.embedded_gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ids = converted.tokenizer("Set the AC to 22 degrees.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(converted.model(ids).logits, reference(ids).logits)
