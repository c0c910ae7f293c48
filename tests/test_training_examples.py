"""Training examples: assistant-only labels, exact prompt format, left truncation, and session
examples that supervise exactly what per-turn examples do.

The tiny-random model uses the embedded model's tokenizer (models.loading), so these tests cover
the embedded model's chat template too."""

from __future__ import annotations

import copy
from collections import Counter

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


# --- session examples: the same supervised (context, target) pairs as per-turn examples -----

def pairs(n: int, offset: int = 0) -> list[dict[str, str]]:
    return [m for i in range(offset, offset + n) for m in (
        {"role": "user", "text": f"Request {i}: lights to {10 * i}%, TV on HDMI{i % 2 + 1}."},
        {"role": "assistant", "text": f"Done: lights {10 * i}%, TV input HDMI{i % 2 + 1}."})]


SESSIONS = {
    "short": pairs(3),
    "long": pairs(8),  # longer than max_context_messages: its context window slides
    "opens_with_assistant": [{"role": "assistant", "text": "Good morning!"}, *pairs(3)],
    "two_users_in_a_row": [pairs(1)[0], *pairs(3, offset=1)],
}


def sessions(*names: str) -> list[CleanDialogue]:
    return [CleanDialogue.model_validate({"persona_id": "persona_000", "messages": SESSIONS[n]})
            for n in names]


def supervised(examples) -> Counter:
    """(every token before it, target token) for each supervised position: what training sees."""
    return Counter((ex.input_ids[:p], label) for ex in examples
                   for p, label in enumerate(ex.labels) if label != IGNORE_INDEX)


def build(tokenizer, unit: str, max_context: int, max_length: int, names=tuple(SESSIONS)):
    return build_examples(tokenizer, sessions(*names), end_of_turn_id=tokenizer.eos_token_id,
                          system_prompt="SYS", max_context_messages=max_context,
                          max_length=max_length, unit=unit)


@pytest.mark.parametrize(("max_context", "max_length"), [(5, 512), (2, 512), (3, 100), (5, 8)])
def test_session_examples_supervise_the_same_pairs_as_per_turn_examples(
        tokenizer, max_context, max_length) -> None:
    turn = build(tokenizer, "turn", max_context, max_length)
    session = build(tokenizer, "session", max_context, max_length)
    assert supervised(session) == supervised(turn)
    assert max(map(len, session)) <= max_length
    if max_length == 512:  # nothing truncated: sessions share sequences, so fewer tokens
        assert len(session) < len(turn)
        assert sum(map(len, session)) < sum(map(len, turn))


def test_a_session_within_the_context_window_is_one_example(tokenizer) -> None:
    """Before each reply the session example holds exactly render_prompt's tokens."""
    (example,) = build(tokenizer, "session", 5, 512, names=("short",))
    messages = SESSIONS["short"]
    starts = [p for p in range(len(example.labels)) if example.labels[p] != IGNORE_INDEX
              and (p == 0 or example.labels[p - 1] == IGNORE_INDEX)]
    replies = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    assert len(starts) == len(replies) == 3
    for start, index in zip(starts, replies, strict=True):
        prompt = render_prompt(tokenizer, messages[:index], "SYS", 5)
        assert list(example.input_ids[:start]) == tokenizer(prompt, add_special_tokens=False)[
            "input_ids"]
        reply = tokenizer(messages[index]["text"], add_special_tokens=False)["input_ids"]
        end = start + len(reply) + 1
        assert list(example.labels[start:end]) == [*reply, tokenizer.eos_token_id]
    assert example.input_ids[-1] == tokenizer.eos_token_id  # ends with the last reply


def test_turns_past_the_context_window_get_their_own_examples(tokenizer) -> None:
    examples = build(tokenizer, "session", 3, 512, names=("long",))
    spans = [sum(1 for p in range(len(ex.labels)) if ex.labels[p] != IGNORE_INDEX
                 and (p == 0 or ex.labels[p - 1] == IGNORE_INDEX)) for ex in examples]
    assert spans == [3, 1, 1, 1, 1, 1]  # pairs 1-3 share; pairs 4-8 each see a slid window


def test_a_template_that_rewrites_earlier_turns_falls_back_to_per_turn(tokenizer) -> None:
    """If a turn's prompt does not extend the previous sequence token for token (here the header
    counts the messages), sharing would change its context, so every turn stands alone."""
    odd = copy.deepcopy(tokenizer)
    odd.chat_template = (
        "{{ messages | length }} messages\n{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    turn = build(odd, "turn", 5, 512)
    session = build(odd, "session", 5, 512)
    assert session == turn


@pytest.mark.parametrize("unit", ["session", "turn"])
def test_an_unlearned_reply_stays_context_and_is_not_supervised(tokenizer, unit) -> None:
    """The second reply is left unlearned: no label on its tokens, yet the third reply is
    learned from the very context it has without the skip (the second reply included)."""
    def second(dialogue: CleanDialogue, index: int) -> bool:
        return index == 3

    kwargs = {"end_of_turn_id": tokenizer.eos_token_id, "system_prompt": "SYS",
              "max_context_messages": 5, "max_length": 512, "unit": unit}
    every = supervised(build_examples(tokenizer, [dialogue()], **kwargs))
    skipped = supervised(build_examples(tokenizer, [dialogue()], unlearned=second, **kwargs))
    prompt = tuple(tokenizer(render_prompt(tokenizer, MESSAGES[:3], "SYS", 5),
                             add_special_tokens=False)["input_ids"])
    target = len(tokenizer(MESSAGES[3]["text"], add_special_tokens=False)["input_ids"]) + 1
    second_reply = Counter({pair: n for pair, n in every.items()
                            if pair[0][:len(prompt)] == prompt
                            and len(pair[0]) < len(prompt) + target})
    assert len(second_reply) == target and skipped == every - second_reply


def test_a_session_whose_only_reply_is_unlearned_gives_no_example(tokenizer) -> None:
    examples = build_examples(tokenizer, sessions("short")[:1], end_of_turn_id=0,
                              system_prompt="SYS", max_context_messages=5, max_length=512,
                              unit="session", unlearned=lambda dialogue, index: True)
    assert examples == []
