"""ServeSettings: every knob of the HTTP server, documented field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from adaptcommand.config import StrictModel
from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT


class ServeSettings(StrictModel):
    """What `create_app` needs. Defaults are safe: greedy replies, small bodies, loopback only
    (the CLI enforces the host rule; the app itself does not bind)."""

    adapters_dir: Path = Field(description="Directory of <persona_id>/ and unified/ LoRA dirs.")
    model: str = Field("embedded", description="Base model name for models.loading.load_model.")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    cache_size: int = Field(8, ge=1, description="Most adapters kept loaded (LRU).")
    token: SecretStr | None = Field(
        None, description="Bearer token required on /v1/*; it acts for every user (admin).")
    keys_file: Path | None = Field(
        None, description="Per-user keys (serving.keys): each key acts only for its users; "
        "reloaded when the file changes or on SIGHUP.")
    profiles: Path | None = Field(
        None, description="Mined routines (profiles.json or routines.jsonl) for "
        "/v1/users/{id}/routines and the prompts' profile line; default: "
        "<adapters>/<id>/profile.json.")
    prompt_profile: Literal["auto", "line", "none"] = Field(
        "auto", description="The user's profile line in the prompt (serving.profile): auto: "
        "as the adapters were trained (their manifest's prompt.profile, placement and context "
        "sentence); line: always (e.g. the base-model profile arm); none: never.")
    max_context_tokens: int | None = Field(
        None, ge=16, description="Prompt + max_tokens limit; default: the model's context.")
    max_tokens_limit: int = Field(256, ge=1, description="Larger max_tokens is a 400.")
    default_max_tokens: int = Field(64, ge=1, description="max_tokens when a request omits it.")
    max_body_bytes: int = Field(65536, ge=1024, description="Larger request bodies get a 413.")
    max_batch_size: int = Field(8, ge=1, description="Most requests generated together.")
    batch_wait_ms: float = Field(5.0, ge=0, description="How long a batch waits for company.")
    data_dir: Path | None = Field(
        None, description="`data prepare` output; enables identify_user (train centroids)."
    )
    system_prompt: str = Field(
        DEFAULT_SYSTEM_PROMPT, description="Used when a request has no system message."
    )
    max_context_messages: int = Field(
        5, ge=0, description="User/assistant pairs of history kept in the prompt."
    )
    seed: int = Field(0, description="Sampling seed when a request gives none.")

    @model_validator(mode="after")
    def _default_within_limit(self) -> ServeSettings:
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError(
                f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens_limit "
                f"({self.max_tokens_limit})"
            )
        return self
