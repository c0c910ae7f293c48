"""GGUF export: llama.cpp's LoRA conventions, and a round trip that applies the exported tensors
(read back with the `gguf` reader, un-permuted with transformers' own GGUF code) to the base
weights and matches PEFT's logits. With llama-cpp-python installed, llama.cpp itself runs the
embedded base + exported adapter and is compared with PEFT (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor
from typer.testing import CliRunner

from adaptcommand.cli import app as cli_app
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.loading import TINY_RANDOM_SHAPE, load_model
from adaptcommand.serving.gguf_check import random_lora
from adaptcommand.serving.gguf_export import HeadLayout, export_gguf, write_lora_gguf

PROMPT = "<|im_start|>user\nSet the lights to 40 and the AC to 22.<|im_end|>\n"


def apply_gguf_lora(base, path: Path) -> None:
    """Add scale * B @ A of every tensor pair in the GGUF to `base`'s weights, in place, going
    back from llama.cpp's layout with transformers' GGUF loader (attn_q/attn_k row order)."""
    reader = gguf.GGUFReader(path)
    alpha = float(reader.fields["adapter.lora.alpha"].contents())
    arrays = {t.name: np.array(t.data, dtype=np.float32) for t in reader.tensors}
    config = base.config.to_dict()
    processor = LlamaTensorProcessor(config=config)
    hf_names = {f"blk.{i}.{g}": f"model.layers.{i}.{h}"
                for i in range(config["num_hidden_layers"])
                for g, h in [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                             ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                             ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                             ("ffn_down", "mlp.down_proj")]}
    params = dict(base.named_parameters())
    for name in [n for n in arrays if n.endswith(".lora_a")]:
        stem = name.removesuffix(".weight.lora_a")
        a, b = arrays[name], arrays[f"{stem}.weight.lora_b"]
        delta = processor.process(b @ a, f"{stem}.weight").weights * (alpha / b.shape[1])
        with torch.no_grad():
            params[f"{hf_names[stem]}.weight"] += torch.from_numpy(np.ascontiguousarray(delta))


def logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids).logits[0].float()


@pytest.mark.parametrize(("rslora", "lora_type", "tolerance"),
                         [(False, "f32", 1e-4), (True, "f32", 1e-4), (False, "f16", 3e-2)])
def test_exported_lora_applied_to_the_base_matches_peft(tmp_path, rslora, lora_type, tolerance):
    loaded = load_model("tiny-random", device="cpu")
    peft_model = random_lora(loaded.model, tmp_path / "adapters" / "persona_000", rslora=rslora)
    peft_model.eval()
    expected = logits(peft_model, loaded.tokenizer)
    manifest = export_gguf(tmp_path / "adapters", tmp_path / "gguf", model="tiny-random",
                           base_type="none", lora_type=lora_type)
    assert manifest == {"base_model": "tiny-random", "base_gguf": None, "lora_type": lora_type,
                        "adapters": {"persona_000": "persona_000.gguf"}}
    base = load_model("tiny-random", device="cpu").model
    before = logits(base, loaded.tokenizer)
    apply_gguf_lora(base, tmp_path / "gguf" / "persona_000.gguf")
    after = logits(base, loaded.tokenizer)
    effect = (before - expected).abs().max()
    assert effect > 0.5  # the adapter really changes the logits
    # Relative to what the adapter does: f32 agrees to rounding, f16 tensors to their precision.
    assert (after - expected).abs().max() < tolerance * effect


def test_lora_gguf_follows_llama_cpp_conventions(tmp_path):
    loaded = load_model("tiny-random", device="cpu")
    random_lora(loaded.model, tmp_path / "a", r=4, alpha=8, targets=["q_proj", "v_proj"])
    layout = HeadLayout(2, TINY_RANDOM_SHAPE["num_attention_heads"],
                        TINY_RANDOM_SHAPE["num_key_value_heads"])
    write_lora_gguf(tmp_path / "a", tmp_path / "a.gguf", layout, "persona_000", "f16")
    reader = gguf.GGUFReader(tmp_path / "a.gguf")
    fields = {name: field.contents() for name, field in reader.fields.items()
              if not name.startswith("GGUF.")}
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama" and fields["general.name"] == "persona_000"
    assert math.isclose(fields["adapter.lora.alpha"], 8.0)
    hidden = TINY_RANDOM_SHAPE["hidden_size"]
    kv = hidden // TINY_RANDOM_SHAPE["num_attention_heads"] * layout.n_head_kv
    shapes = {t.name: (tuple(int(d) for d in t.shape), t.tensor_type) for t in reader.tensors}
    f16 = gguf.GGMLQuantizationType.F16
    assert shapes == {  # GGUF ne order: lora_a [in, r], lora_b [r, out]
        f"blk.{i}.{name}.weight.lora_{part}": (shape, f16)
        for i in range(2)
        for name, out in (("attn_q", hidden), ("attn_v", kv))
        for part, shape in (("a", (hidden, 4)), ("b", (4, out)))}


def test_export_refuses_what_llama_cpp_cannot_apply_the_same_way(tmp_path):
    loaded = load_model("tiny-random", device="cpu")
    random_lora(loaded.model, tmp_path / "adapters" / "persona_000")
    config_path = tmp_path / "adapters" / "persona_000" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(AdaptCommandError, match=r"adapter_config.json: field 'use_dora'"):
        export_gguf(tmp_path / "adapters", tmp_path / "out", model="tiny-random",
                    base_type="none")
    assert not (tmp_path / "out" / "persona_000.gguf").exists()
    with pytest.raises(AdaptCommandError, match="embedded model only"):
        export_gguf(tmp_path / "adapters", tmp_path / "out", model="tiny-random")


def test_cli_export_writes_the_adapters_and_manifest(tmp_path):
    loaded = load_model("tiny-random", device="cpu")
    for i, name in enumerate(("persona_000", "unified")):
        random_lora(loaded.model, tmp_path / "adapters" / name, seed=i)
        loaded = load_model("tiny-random", device="cpu")
    result = CliRunner().invoke(cli_app, [
        "export", "--adapters", str(tmp_path / "adapters"), "--format", "gguf", "--out",
        str(tmp_path / "out"), "--model", "tiny-random", "--base-type", "none"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.json", "persona_000.gguf", "unified.gguf"]


# --- llama.cpp itself, on the embedded model (optional extra, slow) ---------------------------


@pytest.mark.slow
def test_llama_cpp_applies_the_exported_adapter_like_peft(tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    from adaptcommand.serving.gguf_check import compare_with_llama_cpp

    report = compare_with_llama_cpp(tmp_path, llama_cpp, new_tokens=8)
    assert report["f32"]["same_greedy_tokens"], report
    assert report["f32"]["max_abs_logit_diff"] < 1e-2, report
    assert report["f32"]["adapter_effect"] > 1.0, report  # the adapter really acted
    assert report["q4_1"]["first_token_agrees"], report


@pytest.mark.slow
def test_f32_base_gguf_holds_the_weights_the_embedded_model_runs(tmp_path):
    from adaptcommand.models.loading import embedded_gguf_path
    from adaptcommand.serving.gguf_export import write_base_gguf

    write_base_gguf(embedded_gguf_path(), tmp_path / "base.gguf", "f32")
    written = gguf.GGUFReader(tmp_path / "base.gguf")
    source = gguf.GGUFReader(embedded_gguf_path())
    assert {n: f.contents() for n, f in written.fields.items()
            if n.startswith("tokenizer.") and n != "tokenizer.ggml.tokens"} == {
        n: f.contents() for n, f in source.fields.items()
        if n.startswith("tokenizer.") and n != "tokenizer.ggml.tokens"}
    assert int(written.fields["general.file_type"].contents()) == int(
        gguf.LlamaFileType.ALL_F32)
    tensors = {t.name: t for t in written.tensors}
    assert {t.tensor_type for t in written.tensors} == {gguf.GGMLQuantizationType.F32}
    model = load_model("embedded", device="cpu").model
    processor = LlamaTensorProcessor(config=model.config.to_dict())
    for gguf_name, hf_name in [("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight"),
                               ("blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight"),
                               ("blk.5.ffn_down.weight", "model.layers.5.mlp.down_proj.weight"),
                               ("token_embd.weight", "model.embed_tokens.weight")]:
        array = np.array(tensors[gguf_name].data, dtype=np.float32)
        array = processor.process(array, gguf_name).weights
        expected = dict(model.named_parameters())[hf_name].detach().numpy()
        np.testing.assert_array_equal(array, expected)
