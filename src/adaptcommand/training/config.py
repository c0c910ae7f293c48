"""The training contract: every knob of a LoRA run, with its reference value and meaning.

`configs/lora_training.json` holds the reference values; the CLI's `--set key=value` overrides any
field. The config hash stored in a run's manifest covers every field that can change the trained
weights, so a resumed run refuses a different config instead of mixing adapters.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field

from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT, ProfileOptions

# Fields that only change how fast a run goes, not what it learns: free to change on resume.
THROUGHPUT_FIELDS = frozenset({"adapters_per_step", "max_tokens_per_step", "pack_padding_slack",
                               "eval_batch_size"})
# Fields added after runs were made: left out of the hash at their defaults, so those runs
# still resume (ProfileOptions' own fields leave every dump at their defaults).
HASHED_WHEN_SET = ("distill_examples_per_routine",)


class TrainingConfig(ProfileOptions):
    """Hyper-parameters of one training run (all strategies share them)."""

    model: str = Field("embedded", description="Base model: 'embedded', 'tiny-random', a local "
                       "directory or a Hugging Face hub id (offline cache only).")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda or cuda:N.")
    dtype: str = Field("auto", description="Base weights' dtype: auto (bf16 on CUDA, fp32 on "
                       "CPU), float32, bfloat16 or float16. Adapters always train in fp32.")
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha; the update is scaled by alpha/r.")
    target_modules: list[str] = Field(["q_proj", "v_proj"], min_length=1,
                                      description="Names of the linear layers that get LoRA.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    method: Literal["lora", "prefix"] = Field(
        "lora", description="Adaptation method: lora (low-rank updates of target_modules; many "
        "adapters share each training step) or prefix (PEFT prefix tuning: num_virtual_tokens "
        "learned key/values in front of every layer's attention; adapters train one at a time, "
        "and r, alpha, target_modules and dropout are ignored).")
    num_virtual_tokens: int = Field(16, ge=1, description="Prefix length for method prefix: "
                                    "learned key/value positions per layer (ignored for lora).")
    learning_rate: float = Field(5e-4, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW (decoupled) weight decay.")
    epochs: int = Field(5, ge=1, description="Maximum passes over each adapter's train data.")
    batch_size: int = Field(4, ge=1, description="Assistant replies per optimizer step of one "
                            "adapter (a session example counts each of its replies).")
    lr_scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule after warm-up (transformers names).")
    warmup_ratio: float = Field(0.1, ge=0, le=1, description="Fraction of an adapter's planned "
                                "steps spent warming the learning rate up from 0.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Per-adapter gradient-norm "
                                        "clipping; null disables it.")
    max_length: int = Field(512, ge=8, description="Tokens per example; the prompt is cut from "
                            "the left so the turn being learned is kept.")
    example_unit: Literal["session", "turn"] = Field(
        "session", description="session: one example per session, every assistant reply in "
        "it supervised (each sees exactly the context a per-turn example gives it; turns whose "
        "context window has slid or that exceed max_length get their own example), so early "
        "messages are encoded once, not once per later turn; turn: one example per assistant "
        "turn. Same loss per token and, as batch_size counts replies, the same number of steps "
        "either way; session just feeds about 4x fewer tokens.")
    patience: int | None = Field(2, ge=1, description="Stop an adapter after this many epochs "
                                 "without a val-loss improvement; null disables early stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest val-loss decrease that counts as "
                             "an improvement.")
    seed: int = Field(0, description="Seeds adapter init, per-adapter shuffling and dropout.")
    max_context_messages: int = Field(5, ge=1, description="User/assistant pairs of context "
                                      "before the turn being learned.")
    system_prompt: str | None = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt of "
                                      "every example (the same as evaluation's); null for none.")
    distill_examples_per_routine: int = Field(
        0, ge=0, description="Extra training examples per mined routine of a persona: a "
        "context-only or implicit request answered with the routine's values "
        "(training.distill); 0 = none.")
    clusters: int | None = Field(None, ge=2, description="--strategy cluster only: number of "
                                 "behaviour clusters K (< the number of personas); null picks "
                                 "the K in 2..8 with the best silhouette.")
    adapters_per_step: int | None = Field(None, ge=1, description="Adapters whose batches "
                                          "share one forward/backward pass; null = auto: 8 on "
                                          "a GPU, 1 on a CPU (a CPU is compute-bound at one "
                                          "adapter's batch, packing only adds padding; "
                                          "measured in BENCHMARKS.md). Throughput only.")
    max_tokens_per_step: int = Field(4096, ge=1, description="Cap on rows x padded length of "
                                     "one packed step (activation memory; fp32 SmolLM2 needs "
                                     "about 1.3 MB per token); one adapter's batch always runs. "
                                     "Throughput only.")
    pack_padding_slack: float = Field(0.1, ge=0, description="Pack another adapter's batch into "
                                      "a step only if that adds at most this fraction of padding "
                                      "over running the batches apart: padding is pure waste on "
                                      "a CPU, while a GPU gains from bigger batches (raise it). "
                                      "Throughput only.")
    length_bucket_batches: int = Field(8, ge=1, description="Examples are sorted by length within "
                                       "windows of this many batches to cut padding; 1 = plain "
                                       "shuffled batches.")
    eval_batch_size: int = Field(8, ge=1, description="Validation examples per adapter per "
                                 "forward pass (throughput only).")


def config_hash(config: TrainingConfig) -> str:
    """SHA-256 of the fields that shape the trained weights (see THROUGHPUT_FIELDS)."""
    relevant = config.model_dump(exclude=set(THROUGHPUT_FIELDS))
    for name in HASHED_WHEN_SET:
        if relevant[name] == TrainingConfig.model_fields[name].default:
            del relevant[name]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
