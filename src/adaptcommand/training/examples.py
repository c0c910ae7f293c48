"""Dialogues -> training examples: one per assistant turn, loss on that turn's tokens only.

The prompt is exactly what evaluation feeds the model (models.prompting.render_prompt over the
preceding messages), the target is the reply followed by the token the chat template closes an
assistant turn with, so the model learns to stop where evaluation expects it to.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedTokenizerBase

from adaptcommand.data.schema import CleanDialogue
from adaptcommand.models.prompting import render_prompt
from adaptcommand.training.batching import IGNORE_INDEX, Example

_MARKER = "\u2063reply\u2063"  # text no real reply contains, to locate the template's suffix


def turn_terminator(tokenizer: PreTrainedTokenizerBase, end_of_turn_ids: list[int]) -> int:
    """The end-of-turn id the chat template writes right after an assistant message."""
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _MARKER}]
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    suffix = text[text.rindex(_MARKER) + len(_MARKER):]
    for token_id in tokenizer(suffix, add_special_tokens=False)["input_ids"]:
        if token_id in end_of_turn_ids:
            return token_id
    return end_of_turn_ids[0]


def turn_example(prompt_ids: list[int], target_ids: list[int], max_length: int) -> Example:
    """Prompt + target, labels masked on the prompt; over-long prompts lose their oldest tokens.

    A target longer than the budget keeps its start, and at least one prompt token survives so
    the first target token is still predicted from something.
    """
    target_ids = target_ids[: max_length - 1]
    prompt_ids = prompt_ids[-(max_length - len(target_ids)):]
    return Example(tuple(prompt_ids + target_ids),
                   tuple([IGNORE_INDEX] * len(prompt_ids) + target_ids))


def build_examples(tokenizer: PreTrainedTokenizerBase, dialogues: Iterable[CleanDialogue], *,
                   end_of_turn_id: int, system_prompt: str | None, max_context_messages: int,
                   max_length: int) -> list[Example]:
    """One example per assistant turn of every dialogue, in order."""
    examples: list[Example] = []
    for dialogue in dialogues:
        for index, message in enumerate(dialogue.messages):
            if message.role != "assistant":
                continue
            prompt = render_prompt(tokenizer, dialogue.messages[:index], system_prompt,
                                   max_context_messages)
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            target_ids = tokenizer(message.text, add_special_tokens=False)["input_ids"]
            examples.append(turn_example(prompt_ids, target_ids + [end_of_turn_id], max_length))
    return examples
