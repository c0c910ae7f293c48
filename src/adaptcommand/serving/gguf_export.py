"""Each user's LoRA adapter as a llama.cpp LoRA GGUF, plus the base model GGUF it applies to.

llama.cpp's conventions (its convert_lora_to_gguf.py, llama-adapter.cpp): metadata
`general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha` (float32); one pair of
tensors per adapted weight, named after the base tensor (`blk.N.attn_q.weight`) plus `.lora_a`
and `.lora_b`. PEFT's shapes are kept as they are: lora_A (r, in) and lora_B (out, r) are, in
GGUF's reversed dimension order, the ne = [in, r] and [r, out] llama.cpp expects. llama.cpp
scales a delta by alpha / r with r read from lora_b, so alpha is written as PEFT's scaling * r
(which also covers rsLoRA). Llama GGUFs store attn_q / attn_k with their rows permuted for
llama.cpp's rope layout (convert_hf_to_gguf's `permute`); lora_B's rows (the output rows of the
delta) get the same permutation, lora_A none.

The base GGUF of the embedded model is its own Q4_1 file (what the device ships), or that file
dequantized to f32 / f16 for exact comparisons; other bases are converted with llama.cpp's
convert_hf_to_gguf.py. Written with the `gguf` package, atomically.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gguf
import numpy as np
from safetensors.numpy import load_file

from adaptcommand.errors import AdaptCommandError
from adaptcommand.fileio import atomic_path, write_json_atomic
from adaptcommand.models.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, discover_adapters
from adaptcommand.models.loading import EMBEDDED, TINY_RANDOM, TINY_RANDOM_SHAPE

FloatType = Literal["f32", "f16"]
BaseType = Literal["q4_1", "f32", "f16", "none"]
MANIFEST = "manifest.json"
_PEFT_PREFIX = "base_model.model."
_NUMPY = {"f32": np.float32, "f16": np.float16}


@dataclass(frozen=True)
class HeadLayout:
    """What the q/k permutation and the tensor names need from the base model."""

    n_layer: int
    n_head: int
    n_head_kv: int


def llama_permute(rows: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """convert_hf_to_gguf's permutation of the output rows of attn_q (n_head) and attn_k
    (n_head_kv): each head's rotary pairs go from interleaved halves to llama.cpp's order."""
    heads = n_head_kv if n_head_kv is not None and n_head_kv != n_head else n_head
    return (rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:])
            .swapaxes(1, 2).reshape(rows.shape))


def lora_scaling(config: dict) -> float:
    """PEFT's multiplier of B @ A: alpha / r, or alpha / sqrt(r) with rsLoRA."""
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def adapter_tensors(adapter_dir: Path, layout: HeadLayout) -> tuple[dict[str, np.ndarray], float]:
    """(GGUF name -> float32 array, alpha to write) of one PEFT LoRA directory. Refuses what
    llama.cpp cannot apply the same way (DoRA, per-module ranks or alphas, extra modules)."""
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    refused = [("peft_type", config.get("peft_type") != "LORA"),
               ("use_dora", bool(config.get("use_dora"))),
               ("rank_pattern", bool(config.get("rank_pattern"))),
               ("alpha_pattern", bool(config.get("alpha_pattern"))),
               ("modules_to_save", bool(config.get("modules_to_save")))]
    bad = [field for field, is_bad in refused if is_bad]
    if bad:
        raise AdaptCommandError(f"{adapter_dir / ADAPTER_CONFIG}: field '{bad[0]}': llama.cpp "
                                "LoRA GGUFs hold plain LoRA only")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layout.n_layer)
    tensors: dict[str, np.ndarray] = {}
    for key, value in sorted(load_file(str(adapter_dir / ADAPTER_WEIGHTS)).items()):
        module, _, part = key.removeprefix(_PEFT_PREFIX).rpartition(".lora_")
        base = names.get_name(module)
        if base is None or part not in ("A.weight", "B.weight"):
            raise AdaptCommandError(f"{adapter_dir / ADAPTER_WEIGHTS}: tensor '{key}' has no "
                                    "llama.cpp counterpart")
        array = value.astype(np.float32)
        if part == "B.weight" and base.endswith(".attn_q"):
            array = llama_permute(array, layout.n_head)
        elif part == "B.weight" and base.endswith(".attn_k"):
            array = llama_permute(array, layout.n_head, layout.n_head_kv)
        tensors[f"{base}.weight.lora_{part[0].lower()}"] = array
    return tensors, lora_scaling(config) * int(config["r"])


def write_lora_gguf(adapter_dir: Path, out: Path, layout: HeadLayout, name: str,
                    dtype: FloatType = "f32") -> None:
    """One adapter directory as a llama.cpp LoRA GGUF at `out`."""
    tensors, alpha = adapter_tensors(adapter_dir, layout)
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(tmp, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(name)
        for tensor_name, array in tensors.items():
            writer.add_tensor(tensor_name, array.astype(_NUMPY[dtype]))
        _finish(writer)


def write_base_gguf(source: Path, out: Path, dtype: BaseType) -> None:
    """The base model GGUF: `source` itself (its own quantization), or every quantized tensor
    dequantized to f32 / f16 (1-D tensors stay f32, as llama.cpp's converter keeps norms)."""
    if dtype == "q4_1":
        with atomic_path(out) as tmp:
            shutil.copyfile(source, tmp)
        return
    reader = gguf.GGUFReader(source)
    arch = str(reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    file_type = gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(tmp, arch=arch)
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue
            kind = field.types[0]
            value = int(file_type) if field.name == gguf.Keys.General.FILE_TYPE else (
                field.contents())
            writer.add_key_value(field.name, value, kind,
                                 sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY
                                 else None)
        for tensor in reader.tensors:
            array = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            keep_f32 = dtype == "f32" or array.ndim == 1
            writer.add_tensor(tensor.name, array.astype(np.float32 if keep_f32 else np.float16))
        _finish(writer)


def head_layout(model: str) -> HeadLayout:
    """Layer and head counts of a base model, without loading its weights."""
    if model == EMBEDDED:
        from adaptcommand.models.loading import embedded_gguf_path

        reader = gguf.GGUFReader(embedded_gguf_path())

        def value(key: str) -> int:
            return int(reader.fields[key.format(arch="llama")].contents())

        return HeadLayout(value(gguf.Keys.LLM.BLOCK_COUNT), value(gguf.Keys.Attention.HEAD_COUNT),
                          value(gguf.Keys.Attention.HEAD_COUNT_KV))
    if model == TINY_RANDOM:
        shape = TINY_RANDOM_SHAPE
    else:
        from transformers import AutoConfig

        shape = AutoConfig.from_pretrained(model, local_files_only=True).to_dict()
        if shape.get("model_type") not in ("llama", "mistral"):
            raise AdaptCommandError(f"GGUF export supports Llama-architecture bases; {model} is "
                                    f"{shape.get('model_type')!r}")
    return HeadLayout(shape["num_hidden_layers"], shape["num_attention_heads"],
                      shape.get("num_key_value_heads") or shape["num_attention_heads"])


def export_gguf(adapters_dir: Path, out_dir: Path, *, model: str = EMBEDDED,
                base_type: BaseType = "q4_1", lora_type: FloatType = "f32") -> dict:
    """OUT/<name>.gguf per LoRA adapter of `adapters_dir`, OUT/base-<type>.gguf (embedded
    model only) and OUT/manifest.json saying which file is what. Returns the manifest."""
    if base_type != "none" and model != EMBEDDED:
        raise AdaptCommandError(f"a base GGUF is written for the embedded model only; convert "
                                f"{model} with llama.cpp's convert_hf_to_gguf.py and pass "
                                "--base-type none")
    layout = head_layout(model)
    adapters = discover_adapters(adapters_dir)
    files = {}
    for name, path in adapters.items():
        write_lora_gguf(path, out_dir / f"{name}.gguf", layout, name, lora_type)
        files[name] = f"{name}.gguf"
    manifest = {"base_model": model, "base_gguf": None, "lora_type": lora_type,
                "adapters": files}
    if base_type != "none":
        from adaptcommand.models.loading import embedded_gguf_path

        manifest["base_gguf"] = f"base-{base_type}.gguf"
        write_base_gguf(embedded_gguf_path(), out_dir / manifest["base_gguf"], base_type)
    write_json_atomic(out_dir / MANIFEST, manifest)
    return manifest


def _finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
