"""The evaluation contract (`configs/baseline_v1.0.json`): model, prompt, decoding and scope."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from adaptcommand.config import StrictModel
from adaptcommand.models.generation import GenerationSettings
from adaptcommand.models.prompting import ProfileOptions
from adaptcommand.models.settings import ModelSettings, PromptSettings

PROFILE_OPTIONS = tuple(ProfileOptions.model_fields)


class ScopeSettings(StrictModel):
    split: Literal["train", "val", "test", "cold_start"] = Field(
        "test", description="Split evaluated; cold_start = the sessions of the personas held "
        "out of training (`data prepare --cold-start-personas`) after their profile sessions.")
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
