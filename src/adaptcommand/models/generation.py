"""Batched, reproducible reply generation for evaluation and serving."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from peft import PeftModel
from pydantic import Field
from transformers import DynamicCache, GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from adaptcommand.config import StrictModel
from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.adapters import BASE
from adaptcommand.models.continuous import greedy_continuous, supports_continuous_batching
from adaptcommand.models.loading import end_of_turn_ids as default_end_of_turn_ids
from adaptcommand.models.prefix_cache import (
    batch_inputs,
    build_prefix_cache,
    uses_prompt_learning,
)


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
    batch_size: int = Field(16, ge=1, description="Prompts generated together (on a 2-core CPU "
                            "throughput stops growing at about 16; see BENCHMARKS.md).")
    seed: int = Field(0, description="Base seed; batch i is sampled with seed + i.")
    prefix_cache: bool = Field(
        True, description="Reuse the shared system-prompt KV: prefill the common prefix once."
    )
    continuous_batching: bool = Field(
        True, description="Greedy only: a row whose reply has ended takes the next prompt at "
        "once instead of idling until its batch's longest reply ends. Same replies, fewer "
        "decode steps (models.continuous)."
    )


ReplyCallback = Callable[[int, str], None]
"""Called with (prompt index, reply) as each reply of a `generate` call becomes final."""

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
    on_reply: ReplyCallback | None = None,
) -> list[str]:
    """One stripped reply per prompt, in prompt order, each cut at the first end-of-turn token;
    `on_reply(i, reply)` is called as soon as prompt i's reply is final (completion order).

    Prompts are already rendered (chat template applied), so no special tokens are added.
    Within the call prompts are sorted longest first and batched, which keeps padding small
    and puts the largest batch first (memory errors show at once); replies are returned in
    the original order. Because batches depend on the sort, a sampled reply depends on the
    other prompts of the call; greedy replies do not. With `settings.prefix_cache` the token
    prefix all prompts share (template head + system prompt) is prefilled once per adapter and
    reused by every batch (models.prefix_cache). Greedy calls use continuous batching
    (models.continuous): a row whose reply ends takes the next prompt at once, so no row idles
    until its batch's longest reply ends. `adapter_names[i]` picks the PEFT LoRA
    adapter for prompt i (mixed-adapter batches; the model must be in eval mode). Prefix-tuning
    adapters cannot be mixed in a batch: see generate_per_adapter.
    """
    if adapter_names is not None and len(adapter_names) != len(prompts):
        raise AdaptCommandError(
            f"got {len(adapter_names)} adapter names for {len(prompts)} prompts"
        )
    if not prompts:
        return []
    stop_ids = list(end_of_turn_ids or default_end_of_turn_ids(tokenizer, model))
    if uses_prompt_learning(model):
        replies = generate_per_adapter(model, tokenizer, prompts, settings, adapter_names,
                                       stop_ids)
        if on_reply is not None:
            for index, reply in enumerate(replies):
                on_reply(index, reply)
        return replies
    replies = [""] * len(prompts)

    def finish(index: int, tokens: list[int]) -> None:
        replies[index] = decode_reply(tokenizer, tokens, stop_ids)
        if on_reply is not None:
            on_reply(index, replies[index])

    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    prefix = build_prefix_cache(model, encoded, adapter_names) if settings.prefix_cache else None
    if (settings.continuous_batching and not settings.do_sample
            and supports_continuous_batching(model)):
        greedy_continuous(model, encoded, adapter_names, batch_size=settings.batch_size,
                          max_new_tokens=settings.max_new_tokens, stop_ids=stop_ids,
                          pad_id=tokenizer.pad_token_id, prefix=prefix, on_done=finish)
        return replies
    config = generation_config(settings, tokenizer.pad_token_id, stop_ids)
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    for batch_index, start in enumerate(range(0, len(order), settings.batch_size)):
        indices = order[start : start + settings.batch_size]
        names = [adapter_names[i] for i in indices] if adapter_names else None
        batch = batch_inputs(tokenizer, [encoded[i] for i in indices], names, prefix, model.device)
        extra = {"adapter_names": names} if names else {}
        torch.manual_seed(settings.seed + batch_index)
        with torch.inference_mode():
            output = model.generate(**batch, generation_config=config, **extra)
        new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
        for index, tokens in zip(indices, new_tokens, strict=True):
            finish(index, tokens)
    return replies


def generate_per_adapter(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    settings: GenerationSettings,
    adapter_names: list[str] | None,
    stop_ids: list[int],
) -> list[str]:
    """`generate` for prompt-learning (prefix-tuning) adapters, which act through key/values a
    whole batch shares: each adapter's prompts are generated together with that adapter, BASE
    prompts on the base model (no names: the active adapter). Replies keep prompt order; batch
    seeds restart per adapter; greedy replies equal generating each prompt alone."""
    names = adapter_names or [model.active_adapter] * len(prompts)
    replies = [""] * len(prompts)
    for name in dict.fromkeys(names):
        indices = [i for i, n in enumerate(names) if n == name]
        group = [prompts[i] for i in indices]
        if name == BASE:
            texts = generate(model.get_base_model(), tokenizer, group, settings,
                             end_of_turn_ids=stop_ids)
        else:  # the adapter's key/values own the cache: no plain prefix, no slot cache
            texts = generate(PrefixTuned(model, name), tokenizer, group,  # type: ignore[arg-type]
                             settings.model_copy(update={"prefix_cache": False,
                                                         "continuous_batching": False}),
                             end_of_turn_ids=stop_ids)
        for index, text in zip(indices, texts, strict=True):
            replies[index] = text
    return replies


class PrefixTuned:
    """One prefix-tuning adapter as `generate` drives a model: the base model generating from a
    cache pre-filled with the adapter's key/values, as PEFT's forward (and so training) runs it.
    Not PeftModel.generate: under transformers 5 it passes the prefix as `past_key_values`, which
    the model drops for the `cache` generation made, so the adapter had no effect."""

    def __init__(self, peft_model: PeftModel, name: str) -> None:
        self.peft_model, self.name = peft_model, name
        self.base = peft_model.get_base_model()
        self.device = self.base.device

    def _prefix(self, rows: int) -> DynamicCache:
        previous = self.peft_model.active_adapter
        self.peft_model.set_adapter(self.name)
        try:
            return self.peft_model.get_prompt(rows)
        finally:
            self.peft_model.set_adapter(previous)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 **kwargs: object) -> torch.Tensor:
        """Left-padded prompts -> prompts + new tokens, as `PreTrainedModel.generate`."""
        rows, virtual = len(input_ids), self.peft_model.peft_config[self.name].num_virtual_tokens
        # Stand-ins for the virtual positions the cache holds (`generate` feeds only the ids past
        # the cache); each row's first real token, so a repetition penalty sees no new token.
        first = input_ids.gather(1, attention_mask.argmax(dim=1, keepdim=True))
        output = self.base.generate(
            input_ids=torch.cat([first.expand(rows, virtual), input_ids], dim=1),
            attention_mask=torch.cat([attention_mask.new_ones(rows, virtual), attention_mask], 1),
            cache=self._prefix(rows),
            **kwargs,
        )
        return output[:, virtual:]


def decode_reply(tokenizer: PreTrainedTokenizerBase, tokens: list[int], stop_ids: list[int]) -> str:
    """Text before the first stop token: after it come pads, or the token itself when a stop
    id is not a special token that decoding would skip."""
    cut = next((i for i, token in enumerate(tokens) if token in stop_ids), len(tokens))
    return tokenizer.decode(tokens[:cut], skip_special_tokens=True).strip()
