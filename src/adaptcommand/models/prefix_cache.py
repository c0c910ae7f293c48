"""Prefix caching for batched generation (what vLLM calls automatic prefix caching).

Evaluation prompts share their chat-template head and system prompt, about half of every
prompt, and prefill is compute-bound, so batching alone cannot make it cheap. Here the
key/values of the token prefix shared by all prompts of a `generate` call are computed once
(per adapter: LoRA on q/v changes them) and every batch only prefills each prompt's own tail.

A batch is laid out as `[shared prefix][left padding of the tails][tail]`; the attention mask
zeros the padding, and `generate` derives position ids from the mask's cumulative sum, so real
tokens keep the positions they have when the prompt is generated alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import DynamicCache, DynamicLayer

MIN_PREFIX_TOKENS = 8
"""Shorter shared prefixes (the bare template head when system prompts differ) save too little
to pay for the extra forward."""


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix all sequences share, stopping one token before the
    shortest ends: the last prompt token must be fed to `generate` to get the first logits."""
    limit = min(len(sequence) for sequence in sequences) - 1
    first = sequences[0]
    length = 0
    while length < limit and all(sequence[length] == first[length] for sequence in sequences):
        length += 1
    return length


def uses_prompt_learning(model: PreTrainedModel) -> bool:
    """PEFT prompt-learning adapters (prefix tuning, prompt tuning) inject virtual tokens or
    their own key/values in front of the prompt, which a cached plain prefix would bypass."""
    configs = getattr(model, "peft_config", {}) or {}
    return any(getattr(config, "is_prompt_learning", False) for config in configs.values())


@dataclass(frozen=True)
class PrefixCache:
    """The shared prefix's token ids and key/values, one cache row per adapter name."""

    ids: list[int]
    cache: DynamicCache
    rows: dict[str | None, int]


def batch_inputs(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    adapter_names: Sequence[str] | None,
    prefix: PrefixCache | None,
    device: torch.device,
) -> dict[str, torch.Tensor | DynamicCache]:
    """`generate` inputs for one batch. Without a prefix cache: the left-padded prompts. With
    one: full input ids and mask (`generate` skips the part the cache holds) and a fresh cache
    with each prompt's adapter row, since `generate` grows the cache it is given."""
    if prefix is None:
        padded = tokenizer.pad({"input_ids": [list(p) for p in prompts]}, return_tensors="pt")
        return dict(padded.to(device))
    tails = tokenizer.pad(
        {"input_ids": [list(prompt[len(prefix.ids) :]) for prompt in prompts]},
        return_tensors="pt",
    )
    head = torch.tensor([prefix.ids]).expand(len(prompts), -1)
    names = adapter_names or [None] * len(prompts)
    rows = torch.tensor([prefix.rows[name] for name in names], device=device)
    # Indexing copies, so the stored prefix is never grown; only the rows used are copied.
    cache = DynamicCache([(layer.keys[rows], layer.values[rows]) for layer in prefix.cache.layers])
    input_ids = torch.cat([head, tails["input_ids"]], dim=1)
    attention_mask = torch.cat([torch.ones_like(head), tails["attention_mask"]], dim=1)
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device),
            "cache": cache}


def build_prefix_cache(
    model: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    adapter_names: Sequence[str] | None,
) -> PrefixCache | None:
    """The prefix cache for one `generate` call, or None where it cannot apply or saves
    nothing (a single prompt) or too little (then prompts are generated whole, as without it)."""
    if len(prompts) < 2 or uses_prompt_learning(model):
        return None
    length = common_prefix_length(prompts)
    if length < MIN_PREFIX_TOKENS:
        return None
    ids = list(prompts[0][:length])
    names: list[str | None] = list(dict.fromkeys(adapter_names)) if adapter_names else [None]
    extra = {"adapter_names": names} if adapter_names else {}
    with torch.inference_mode():
        output = model(
            input_ids=torch.tensor([ids] * len(names), device=model.device),
            use_cache=True,
            logits_to_keep=1,
            **extra,
        )
    cache = output.cache
    # Sliding-window or other special layers drop or transform old entries; only a plain,
    # full-attention dynamic cache holds the prefix exactly as a whole-prompt prefill would.
    if not isinstance(cache, DynamicCache) or any(
        type(layer) is not DynamicLayer for layer in cache.layers
    ):
        return None
    return PrefixCache(ids, cache, {name: row for row, name in enumerate(names)})
