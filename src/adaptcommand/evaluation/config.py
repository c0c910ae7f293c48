"""The evaluation contract (`configs/baseline_v1.0.json`): model, prompt, decoding and scope."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

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


class ProfileSourceSettings(StrictModel):
    """Where a profile arm's profiles come from at evaluation (`arms.profile`)."""

    source: Literal["train", "growing"] = Field(
        "train", description="train: each persona's profile mined from its train split "
        "(--profiles FILE or <persona_id>/profile.json next to the adapters). growing "
        "(evaluation.split=cold_start only): the profile answering a new user's session is "
        "mined at evaluation from the sessions the assistant has seen before it (the user's "
        "cold_start_profile sessions, then their earlier cold_start sessions), never from that "
        "session or a later one; results.json adds by_sessions_seen. On an arm without a "
        "profile prompt it only selects the same sessions, so arms compare on the same turns.")
    min_seen_sessions: int = Field(
        3, ge=1, description="growing: a session is evaluated only when at least this many of "
        "the user's sessions were seen before it (cold_start_profile sessions count).")


class EvalConfig(StrictModel):
    """Everything that determines an evaluation's numbers, stored in its results.json."""

    model: ModelSettings = ModelSettings()
    prompt: PromptSettings = PromptSettings()
    generation: GenerationSettings = GenerationSettings()
    evaluation: ScopeSettings = ScopeSettings()
    profile: ProfileSourceSettings = ProfileSourceSettings()

    @model_serializer(mode="wrap")
    def _omit_default_profile_source(self, handler: SerializerFunctionWrapHandler) -> Any:
        """The profile source is left out of dumps at its default, so the configs and run
        identities of runs made before it existed are unchanged (they resume)."""
        data = handler(self)
        if self.profile == ProfileSourceSettings():
            data.pop("profile", None)
        return data
