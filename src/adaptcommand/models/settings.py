"""The settings training and evaluation share, so a model is evaluated as it was trained: which
base model, on which device, and the prompt format (system prompt, context window, profile)."""

from __future__ import annotations

from pydantic import Field

from adaptcommand.config import StrictModel
from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT, ProfileOptions


class ModelSettings(StrictModel):
    name: str = Field("embedded", description="'embedded', 'tiny-random', a local directory or "
                      "a Hugging Face hub id available offline (e.g. Qwen/Qwen2.5-0.5B-Instruct).")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda or cuda:N.")
    dtype: str = Field("auto", description="auto (bf16 on CUDA, fp32 on CPU), float32, "
                       "bfloat16 or float16. Adapters always train in fp32.")


class PromptSettings(ProfileOptions):
    system_prompt: str | None = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt of "
                                      "every turn; null for none.")
    max_context_messages: int = Field(5, ge=1, description="User/assistant pairs of ground-truth "
                                      "context before the turn being learned or predicted.")
