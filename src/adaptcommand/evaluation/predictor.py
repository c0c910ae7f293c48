"""Turning turns into replies: prompt rendering plus batched generation, with optional
per-persona adapters mixed in one batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adaptcommand.evaluation.config import EvalConfig
from adaptcommand.evaluation.turns import Turn
from adaptcommand.models.generation import generate
from adaptcommand.models.loading import LoadedModel
from adaptcommand.models.prompting import render_prompt

Predictor = Callable[[Sequence[Turn]], list[str]]
AdapterRouter = Callable[[str], str]
"""Maps a persona id to the PEFT adapter name its turns are generated with."""


def make_predictor(
    loaded: LoadedModel, config: EvalConfig, router: AdapterRouter | None = None
) -> Predictor:
    """A predictor over the base model, or over a PeftModel whose adapters `router` selects."""

    def predict(turns: Sequence[Turn]) -> list[str]:
        prompts = [
            render_prompt(
                loaded.tokenizer,
                turn.context,
                config.prompt.system_prompt,
                config.prompt.max_context_messages,
            )
            for turn in turns
        ]
        adapters = [router(turn.persona_id) for turn in turns] if router else None
        return generate(
            loaded.model,
            loaded.tokenizer,
            prompts,
            config.generation,
            adapter_names=adapters,
            end_of_turn_ids=loaded.end_of_turn_ids,
        )

    return predict
