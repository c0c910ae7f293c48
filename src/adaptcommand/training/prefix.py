"""Prefix-tuning adapters (PEFT `PrefixTuningConfig`), trained one after another.

A prefix adapter is `num_virtual_tokens` learned key/value positions in front of every layer's
attention. PEFT builds them as a pre-filled cache for a whole forward pass, so unlike LoRA
(multi_lora) adapters cannot be mixed per row: they train one at a time on one wrapped model,
whose single adapter slot is reset for each job, to the key/values the model itself computes for
real text (init_prefix), not PEFT's random prefix. Everything else is the LoRA engine's:
the same batches (batching.epoch_batches, eval_batches, pack), AdamW + schedule
(engine.adapter_optimizer), clipping, early stopping and best-epoch weights (engine.best_epoch),
LM head on target tokens only (engine.target_losses), and the same AdapterResult records.

GQA: PEFT sizes the prefix by the model's key/value heads (`num_key_value_heads`), which is what
SmolLM2 (9 query, 3 key/value heads) and tiny-random (4, 2) attend with.
"""

from __future__ import annotations

import math
import time
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
from adaptcommand.training.batching import (
    Example,
    PackedBatch,
    epoch_batches,
    eval_batches,
    pack,
)
from adaptcommand.training.config import TrainingConfig
from adaptcommand.training.engine import (
    AdapterJob,
    AdapterResult,
    StepReport,
    adapter_optimizer,
    best_epoch,
    target_losses,
)
from adaptcommand.training.export import prefix_config

SLOT = "default"  # the one adapter of the wrapped model; each job resets it


def wrap_prefix(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                config: TrainingConfig) -> tuple[PeftModel, PrefixTuningConfig]:
    """The model with one prefix-tuning slot (base weights frozen) holding the starting prefix
    (init_prefix), and the PEFT config PEFT completed for it (layers, key/value heads, head
    size), which every saved adapter carries."""
    peft_model = get_peft_model(model, prefix_config(config, None))
    peft_config = peft_model.peft_config[SLOT]
    peft_config.base_model_name_or_path = config.model  # as LoRA's; PEFT set the local path
    with torch.no_grad():
        _weight(peft_model).copy_(init_prefix(model, init_ids(tokenizer, config)))
    return peft_model, peft_config


def init_ids(tokenizer: PreTrainedTokenizerBase, config: TrainingConfig) -> list[int]:
    """The real tokens whose key/values start every prefix: the system prompt's first
    num_virtual_tokens tokens (repeated when it is shorter)."""
    ids = tokenizer(config.system_prompt or DEFAULT_SYSTEM_PROMPT,
                    add_special_tokens=False)["input_ids"]
    return (ids * math.ceil(config.num_virtual_tokens / len(ids)))[:config.num_virtual_tokens]


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


def _reset(peft_model: PeftModel, job: AdapterJob, start: Tensor) -> None:
    """The slot back to the starting prefix, or to the job's own starting weights (hybrid)."""
    weight = _weight(peft_model)
    if job.init_state is not None:
        start = job.init_state.get("prompt_embeddings")
        if start is None or start.shape != weight.shape:
            raise ValueError(f"adapter {job.name!r}: starting weights do not match the model's "
                             f"prefix {tuple(weight.shape)}")
    with torch.no_grad():
        weight.copy_(start)


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


@torch.no_grad()
def _validate(peft_model: PeftModel, job: AdapterJob, config: TrainingConfig,
              device: torch.device) -> float | None:
    """Token-weighted val loss (None without val data)."""
    peft_model.eval()
    total, count = 0.0, 0
    for group in eval_batches(job.val, config.eval_batch_size):
        sums, counts = _losses(peft_model, pack([group], device))
        total, count = total + float(sums[0]), count + int(counts[0])
    return total / count if count else None


def _train_step(peft_model: PeftModel, group: list[Example], params: list[nn.Parameter],
                optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                config: TrainingConfig) -> float:
    """One batch: forward/backward, clipping, AdamW and schedule step; its mean token loss."""
    peft_model.train()
    sums, counts = _losses(peft_model, pack([group], params[0].device))
    loss = sums[0] / counts[0].clamp(min=1)
    loss.backward()
    if config.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _train_one(peft_model: PeftModel, job: AdapterJob, start: Tensor, config: TrainingConfig,
               on_step: Callable[[StepReport], None] | None) -> AdapterResult:
    """One adapter, epoch by epoch, until its epochs are done or early stopping ends it."""
    if not job.train:
        raise ValueError(f"adapter {job.name!r} has no training examples")
    _reset(peft_model, job, start)
    params = [_weight(peft_model)]
    optimizer, scheduler, planned = adapter_optimizer(params, job, config)
    train_loss: list[float] = []
    val_loss: list[float | None] = []
    best: dict[str, Tensor] = {}
    steps = tokens = 0
    seconds, best_index, stop = 0.0, 0, False
    while not stop and len(train_loss) < config.epochs:
        losses = []
        for group in epoch_batches(job.train, config.batch_size, config.seed, job.name,
                                   len(train_loss), config.length_bucket_batches):
            started = time.perf_counter()
            losses.append(_train_step(peft_model, group, params, optimizer, scheduler, config))
            took, n = time.perf_counter() - started, sum(len(ex) for ex in group)
            steps, tokens, seconds = steps + 1, tokens + n, seconds + took
            if on_step is not None:
                on_step(StepReport({job.name: losses[-1]}, {job.name: steps / planned}, n, took))
        started = time.perf_counter()
        train_loss.append(sum(losses) / len(losses))
        val_loss.append(_validate(peft_model, job, config, params[0].device))
        best_index, stop = best_epoch(val_loss, config)
        if best_index == len(val_loss) - 1:
            best = _state(peft_model)
        seconds += time.perf_counter() - started
    return AdapterResult(job.name, best, len(job.train), len(job.val), steps, best_index + 1,
                         train_loss, val_loss, tokens, seconds,
                         stopped_early=stop and len(train_loss) < config.epochs)


def train_prefix_adapters(peft_model: PeftModel, jobs: Iterable[AdapterJob],
                          config: TrainingConfig, on_result: Callable[[AdapterResult], None],
                          on_step: Callable[[StepReport], None] | None = None) -> None:
    """Train every job in turn on `peft_model` (from wrap_prefix), each starting from the
    prefix the slot holds now or from its own init_state; `on_result` gets each finished
    adapter (best-epoch weights, PEFT keys) before the next one starts."""
    torch.manual_seed(config.seed)
    start = _weight(peft_model).detach().clone()
    for job in jobs:
        on_result(_train_one(peft_model, job, start, config, on_step))
