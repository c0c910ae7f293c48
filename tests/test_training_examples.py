"""Training examples: assistant-only labels, exact prompt format, left truncation."""

from __future__ import annotations

import pytest

from adaptcommand.data.schema import CleanDialogue
from adaptcommand.models.loading import load_tokenizer
from adaptcommand.models.prompting import render_prompt
from adaptcommand.training.batching import IGNORE_INDEX
from adaptcommand.training.examples import build_examples, turn_terminator

MESSAGES = [
    {"role": "user", "text": "Evening! Dim the lights a bit please."},
    {"role": "assistant", "text": "Setting the lights to 30% brightness, warm color."},
    {"role": "user", "text": "And some music, not too loud."},
    {"role": "assistant", "text": "Speaker volume 25 with the balanced equalizer."},
    {"role": "user", "text": "Perfect, thanks."},
    {"role": "assistant", "text": "You're welcome!"},
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random")


def dialogue() -> CleanDialogue:
    return CleanDialogue.model_validate({"persona_id": "persona_000", "messages": MESSAGES})


def test_labels_are_masked_exactly_outside_the_assistant_turn(tokenizer) -> None:
    eot = turn_terminator(tokenizer, [tokenizer.eos_token_id])
    assert tokenizer.convert_ids_to_tokens(eot) == "<|im_end|>"
    examples = build_examples(tokenizer, [dialogue()], end_of_turn_id=eot, system_prompt="SYS",
                              max_context_messages=5, max_length=512)
    assistant_turns = [i for i, m in enumerate(MESSAGES) if m["role"] == "assistant"]
    assert len(examples) == len(assistant_turns)
    for example, turn in zip(examples, assistant_turns, strict=True):
        prompt = render_prompt(tokenizer, MESSAGES[:turn], "SYS", 5)
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert example.labels[:n_prompt] == (IGNORE_INDEX,) * n_prompt
        assert example.labels[n_prompt:] == example.input_ids[n_prompt:]
        assert IGNORE_INDEX not in example.labels[n_prompt:]
        assert tokenizer.decode(example.input_ids[:n_prompt]) == prompt
        target = [t for t in example.labels if t != IGNORE_INDEX]
        assert tokenizer.decode(target) == MESSAGES[turn]["text"] + "<|im_end|>"


def test_long_prompts_lose_their_oldest_tokens_not_the_target(tokenizer) -> None:
    eot = tokenizer.eos_token_id
    full = build_examples(tokenizer, [dialogue()], end_of_turn_id=eot, system_prompt="SYS",
                          max_context_messages=5, max_length=512)[-1]
    cut = build_examples(tokenizer, [dialogue()], end_of_turn_id=eot, system_prompt="SYS",
                         max_context_messages=5, max_length=24)[-1]
    assert len(cut) == 24 < len(full)
    assert cut.input_ids == full.input_ids[-24:]
    assert cut.labels == full.labels[-24:]
    tiny = build_examples(tokenizer, [dialogue()], end_of_turn_id=eot, system_prompt="SYS",
                          max_context_messages=5, max_length=8)[1]
    assert len(tiny) == 8 and tiny.labels[0] == IGNORE_INDEX  # one prompt token always kept
    n_target = sum(t != IGNORE_INDEX for t in tiny.labels)
    assert n_target == 7 and tiny.labels[1:] == tiny.input_ids[1:]
