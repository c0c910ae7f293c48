"""The evaluation contract (`configs/baseline_v1.0.json`): model, prompt, decoding and scope."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from adaptcommand.config import StrictModel
from adaptcommand.models.generation import GenerationSettings
from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT, ProfilePlacement

PROFILE_OPTIONS = ("profile", "profile_placement", "context_line")


class ModelSettings(StrictModel):
    name: str = Field("embedded", description="'embedded', 'tiny-random', a local directory or "
                      "a Hugging Face hub id available offline (e.g. Qwen/Qwen2.5-0.5B-Instruct).")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda or cuda:N.")
    dtype: str = Field("auto", description="auto (bf16 on CUDA, fp32 on CPU), float32, "
                       "bfloat16 or float16.")


class PromptSettings(StrictModel):
    system_prompt: str | None = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt of "
                                      "every turn; null for none.")
    max_context_messages: int = Field(5, ge=1, description="User/assistant pairs of ground-truth "
                                      "context before the predicted turn.")
    profile: Literal["none", "line"] = Field(
        "none", description="line: one line with the user's mined routine for the session's "
        "context and their usual settings (models.profile_prompt), from the adapters' "
        "<persona_id>/profile.json or --profiles FILE; none: no profile.")
    profile_placement: ProfilePlacement = Field(
        "user", description="Where the profile/context text goes: user (before the first user "
        "message of the window) or system (after the system prompt).")
    context_line: bool = Field(False, description="Also state the session's context (time of "
                               "day, day of week, sun phase, weather, outdoor temperature) as "
                               "one sentence, placed like the profile.")

    @model_serializer(mode="wrap")
    def _omit_unused_profile_options(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Profile options at their defaults are left out of dumps, so the identity of runs
        made before they existed is unchanged and those runs still resume."""
        data = handler(self)
        for name in PROFILE_OPTIONS:
            if getattr(self, name) == type(self).model_fields[name].default:
                data.pop(name, None)
        return data


class ScopeSettings(StrictModel):
    split: Literal["train", "val", "test", "cold_start"] = Field(
        "test", description="Split evaluated; cold_start = the first sessions of the personas "
        "held out of training (`data prepare --cold-start-personas`).")
    skip_assistant_turns: int = Field(2, ge=0, description="Leading assistant turns of each "
                                      "session not evaluated (too little context).")
    bootstrap_resamples: int = Field(1000, ge=10, description="Resamples of sessions for CIs.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the CIs.")
    seed: int = Field(0, description="Seed of the bootstrap.")
    embedding_batch_size: int = Field(64, ge=1, description="Texts per embedding forward pass.")


class EvalConfig(StrictModel):
    """Everything that determines an evaluation's numbers, stored in its results.json."""

    model: ModelSettings = ModelSettings()
    prompt: PromptSettings = PromptSettings()
    generation: GenerationSettings = GenerationSettings()
    evaluation: ScopeSettings = ScopeSettings()
