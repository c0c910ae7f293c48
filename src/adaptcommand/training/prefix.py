"""Prefix-tuning adapters (PEFT `PrefixTuningConfig`), trained one after another.

A prefix adapter is `num_virtual_tokens` learned key/value positions in front of every layer's
attention. PEFT builds them as a pre-filled cache for a whole forward pass, so unlike LoRA
(multi_lora) adapters cannot be mixed per row: they train one at a time on one wrapped model,
whose single adapter slot is reset for each job, to the key/values the model itself computes for
real text (init_prefix), not PEFT's random prefix. `PrefixSlots` plugs this into the one
training loop (engine.train_loop), so everything else is LoRA's: the same batches, AdamW +
schedule, clipping, early stopping, best-epoch weights, epoch-end checkpoints, LM head on
target tokens only (engine.target_losses) and AdapterResult records.

GQA: PEFT sizes the prefix by the model's key/value heads (`num_key_value_heads`), which is what
SmolLM2 (9 query, 3 key/value heads) and tiny-random (4, 2) attend with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from peft import (
    PeftModel,
    PrefixTuningConfig,
    get_peft_model,
    get_peft_model_state_dict,
)
from torch import Tensor, nn
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT
from adaptcommand.training.batching import PackedBatch
from adaptcommand.training.checkpoints import Checkpoints
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.engine import (
    AdapterJob,
    AdapterResult,
    StepReport,
    target_losses,
    train_loop,
)
from adaptcommand.training.export import prefix_config
from adaptcommand.training.multi_lora import DropoutPlan

SLOT = "default"  # the one adapter of the wrapped model; each job resets it


def wrap_prefix(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                config: TrainingConfig) -> tuple[PeftModel, PrefixTuningConfig]:
    """The model with one prefix-tuning slot (base weights frozen) holding the starting prefix
    (init_prefix), and the PEFT config PEFT completed for it (layers, key/value heads, head
    size), which every saved adapter carries."""
    peft_model = get_peft_model(model, prefix_config(config, None))
    peft_config = peft_model.peft_config[SLOT]
    peft_config.base_model_name_or_path = config.model.name  # as LoRA's; PEFT set the local path
    with torch.no_grad():
        _weight(peft_model).copy_(init_prefix(model, init_ids(tokenizer, config)))
    return peft_model, peft_config


def init_ids(tokenizer: PreTrainedTokenizerBase, config: TrainingConfig) -> list[int]:
    """The real tokens whose key/values start every prefix: the system prompt's first
    num_virtual_tokens tokens (repeated when it is shorter)."""
    ids = tokenizer(config.prompt.system_prompt or DEFAULT_SYSTEM_PROMPT,
                    add_special_tokens=False)["input_ids"]
    length = config.adapter.num_virtual_tokens
    return (ids * math.ceil(length / len(ids)))[:length]


@torch.no_grad()
def init_prefix(model: PreTrainedModel, ids: list[int]) -> Tensor:
    """The model's own key/values of `ids` at positions 0.., in PEFT's prefix layout
    (virtual token, then layer, key|value, head, head dim). Li & Liang (2021) start prefixes
    from real words' activations. PEFT's N(0, 1) default raised SmolLM2's loss on a few
    smart-home turns from 2.13 (base) to 6.32 before any training; this start gives 2.17, being
    exactly the base model reading `ids` first."""
    cache = DynamicCache()
    # positional: the cache keyword is past_key_values or cache by transformers version
    model.get_decoder()(torch.tensor([ids], device=model.device), None, None, cache,
                        use_cache=True)
    kv = torch.stack([torch.stack([layer.keys[0], layer.values[0]]) for layer in cache.layers])
    return kv.permute(3, 0, 1, 2, 4).reshape(len(ids), -1).float()


def _weight(peft_model: PeftModel) -> nn.Parameter:
    return peft_model.prompt_encoder[SLOT].embedding.weight


def _state(peft_model: PeftModel) -> dict[str, Tensor]:
    """A CPU copy of the adapter under PEFT's saved key names (`prompt_embeddings`)."""
    # save_embedding_layers=False: "auto" looks the base model name up on the Hub
    state = get_peft_model_state_dict(peft_model, adapter_name=SLOT, save_embedding_layers=False)
    return {key: value.detach().cpu().clone() for key, value in state.items()}


def prefix_hidden_states(peft_model: PeftModel, batch: PackedBatch) -> Tensor:
    """Final hidden states of a right-padded batch behind the active prefix: what PEFT's own
    forward computes (the prefix as a pre-filled cache, its positions unmasked, so real tokens
    sit at positions num_virtual_tokens...), minus the LM head over every position."""
    rows = len(batch.input_ids)
    cache = peft_model.get_prompt(rows)
    virtual = peft_model.active_peft_config.num_virtual_tokens
    mask = torch.cat([batch.attention_mask.new_ones(rows, virtual), batch.attention_mask], dim=1)
    decoder = peft_model.get_base_model().get_decoder()
    # positional: the cache keyword is past_key_values or cache by transformers version
    return decoder(batch.input_ids, mask, None, cache, use_cache=True).last_hidden_state


def _losses(peft_model: PeftModel, batch: PackedBatch) -> tuple[Tensor, Tensor]:
    """(sum, count) of the batch's target-token losses, as 1-element tensors."""
    hidden = prefix_hidden_states(peft_model, batch)
    return target_losses(peft_model.get_base_model(), hidden, 0, batch, 1)


class PrefixSlots:
    """The wrapped model's one prefix slot, as the training loop's AdapterSlots: one adapter
    per step, (re)set to `start` or to the adapter's own starting weights (hybrid, resume)."""

    needs_dropout = False

    def __init__(self, peft_model: PeftModel) -> None:
        self.model = peft_model
        self.start = _weight(peft_model).detach().clone()

    def add(self, name: str, seed: int, state: dict[str, Tensor] | None) -> list[nn.Parameter]:
        weight = _weight(self.model)
        start = self.start if state is None else state.get("prompt_embeddings")
        if start is None or start.shape != weight.shape:
            raise ValueError(f"adapter {name!r}: starting weights do not match the model's "
                             f"prefix {tuple(weight.shape)}")
        with torch.no_grad():
            weight.copy_(start)
        return [weight]

    def state_of(self, name: str) -> dict[str, Tensor]:
        return _state(self.model)

    def remove(self, name: str) -> None:
        """Nothing to free: the next add overwrites the slot."""

    def width(self, config: TrainingConfig) -> int:
        return 1

    def losses(self, names: tuple[str, ...], batch: PackedBatch,
               dropout: DropoutPlan | None) -> tuple[Tensor, Tensor]:
        return _losses(self.model, batch)


def train_prefix_adapters(peft_model: PeftModel, jobs: Iterable[AdapterJob],
                          config: TrainingConfig, on_result: Callable[[AdapterResult], None],
                          on_step: Callable[[StepReport], None] | None = None,
                          checkpoints: Checkpoints | None = None) -> None:
    """Train every job in turn on `peft_model` (from wrap_prefix), each starting from the
    prefix the slot holds now or from its own init_state; `on_result` gets each finished
    adapter (best-epoch weights, PEFT keys) before the next one starts."""
    train_loop(PrefixSlots(peft_model), jobs, config, on_result, on_step, checkpoints)
