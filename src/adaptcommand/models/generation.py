"""Batched, reproducible reply generation for evaluation and serving."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from adaptcommand.config import StrictModel
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.loading import end_of_turn_ids as default_end_of_turn_ids


class GenerationSettings(StrictModel):
    """Decoding knobs. Greedy by default, so an evaluation is a deterministic function of its
    inputs; with `do_sample` the draws are reproducible from `seed`."""

    max_new_tokens: int = Field(64, ge=1, description="Most tokens generated per reply.")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding.")
    temperature: float = Field(0.7, gt=0, description="Softmax temperature when sampling.")
    top_p: float = Field(0.9, gt=0, le=1, description="Nucleus mass kept when sampling.")
    repetition_penalty: float = Field(
        1.1, gt=0, description="Penalty on repeated tokens, applied only when sampling."
    )
    batch_size: int = Field(8, ge=1, description="Prompts generated together.")
    seed: int = Field(0, description="Base seed; batch i is sampled with seed + i.")


# What greedy search is given for the sampling knobs: the library's own defaults, which it
# ignores without warning. A model's generation_config must not leak in (see below).
GREEDY_KNOBS = {"temperature": 1.0, "top_p": 1.0, "top_k": 50, "repetition_penalty": 1.0}


def generation_config(
    settings: GenerationSettings, pad_id: int, stop_ids: list[int]
) -> GenerationConfig:
    """Every knob set explicitly: `generate` fills unset ones from the model's own generation
    config (Qwen2.5 ships top_k=20, repetition_penalty=1.05), which would make results depend on
    the checkpoint instead of on our settings. Sampling uses temperature and top-p only."""
    knobs = GREEDY_KNOBS
    if settings.do_sample:
        knobs = {
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "top_k": 0,
            "repetition_penalty": settings.repetition_penalty,
        }
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.do_sample,
        eos_token_id=stop_ids,
        pad_token_id=pad_id,
        **knobs,
    )


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    settings: GenerationSettings,
    *,
    adapter_names: list[str] | None = None,
    end_of_turn_ids: Sequence[int] | None = None,
) -> list[str]:
    """One stripped reply per prompt, in prompt order, each cut at the first end-of-turn token.

    Prompts are already rendered (chat template applied), so no special tokens are added.
    Within the call prompts are sorted longest first and batched, which keeps padding small
    and puts the largest batch first (memory errors show at once); replies are returned in
    the original order. Because batches depend on the sort, a sampled reply depends on the
    other prompts of the call; greedy replies do not. `adapter_names[i]` picks the PEFT LoRA
    adapter for prompt i (mixed-adapter batches; the model must be in eval mode).
    """
    if adapter_names is not None and len(adapter_names) != len(prompts):
        raise AdaptCommandError(
            f"got {len(adapter_names)} adapter names for {len(prompts)} prompts"
        )
    if not prompts:
        return []
    stop_ids = list(end_of_turn_ids or default_end_of_turn_ids(tokenizer, model))
    config = generation_config(settings, tokenizer.pad_token_id, stop_ids)
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    replies = [""] * len(prompts)
    for batch_index, start in enumerate(range(0, len(order), settings.batch_size)):
        indices = order[start : start + settings.batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in indices]}, return_tensors="pt")
        extra = {"adapter_names": [adapter_names[i] for i in indices]} if adapter_names else {}
        torch.manual_seed(settings.seed + batch_index)
        with torch.inference_mode():
            output = model.generate(**batch.to(model.device), generation_config=config, **extra)
        new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
        for index, tokens in zip(indices, new_tokens, strict=True):
            replies[index] = decode_reply(tokenizer, tokens, stop_ids)
    return replies


def decode_reply(tokenizer: PreTrainedTokenizerBase, tokens: list[int], stop_ids: list[int]) -> str:
    """Text before the first stop token: after it come pads, or the token itself when a stop
    id is not a special token that decoding would skip."""
    cut = next((i for i, token in enumerate(tokens) if token in stop_ids), len(tokens))
    return tokenizer.decode(tokens[:cut], skip_special_tokens=True).strip()
