"""Turning turns into replies: prompt rendering plus batched generation, with optional
per-persona adapters mixed in one batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.turns import Turn
from adaptcommand.models.generation import ReplyCallback, generate
from adaptcommand.models.loading import LoadedModel
from adaptcommand.models.prompting import ProfileText, render_prompt


class Predictor(Protocol):
    """Replies for turns, in turn order; `on_reply(i, reply)` as soon as turn i's is final."""

    def __call__(self, turns: Sequence[Turn],
                 on_reply: ReplyCallback | None = None) -> list[str]: ...


AdapterRouter = Callable[[str], str]
"""Maps a persona id to the PEFT adapter name its turns are generated with."""
SystemPrompts = Callable[[Sequence[Turn]], list[str | None]]
"""The system prompt of each turn, when it varies by turn (e.g. retrieved memories)."""
ProfileTexts = Callable[[Sequence[Turn]], list[ProfileText | None]]
"""The profile/context text of each turn's prompt (arms.profile)."""


def make_predictor(
    loaded: LoadedModel,
    config: EvalConfig,
    router: AdapterRouter | None = None,
    system_prompts: SystemPrompts | None = None,
    profile_texts: ProfileTexts | None = None,
) -> Predictor:
    """A predictor over the base model, or over a PeftModel whose adapters `router` selects;
    every turn gets the config's system prompt unless `system_prompts` gives one per turn, and
    the profile/context text `profile_texts` gives it, if any."""

    def predict(turns: Sequence[Turn], on_reply: ReplyCallback | None = None) -> list[str]:
        systems = (system_prompts(turns) if system_prompts
                   else [config.prompt.system_prompt] * len(turns))
        profiles = profile_texts(turns) if profile_texts else [None] * len(turns)
        prompts = [
            render_prompt(
                loaded.tokenizer,
                turn.context,
                system,
                config.prompt.max_context_messages,
                profile,
            )
            for turn, system, profile in zip(turns, systems, profiles, strict=True)
        ]
        adapters = [router(turn.persona_id) for turn in turns] if router else None
        return generate(
            loaded.model,
            loaded.tokenizer,
            prompts,
            config.generation,
            adapter_names=adapters,
            end_of_turn_ids=loaded.end_of_turn_ids,
            on_reply=on_reply,
        )

    return predict
