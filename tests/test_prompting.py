"""Prompt construction: context truncation to the last N pairs, system prompt, chat template."""

from __future__ import annotations

import typing

import pytest

from adaptcommand.data.schema import DEVICE_MODELS, Message
from adaptcommand.errors import AdaptCommandError, DataError
from adaptcommand.models.loading import load_tokenizer
from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT, build_chat, render_prompt


def _dialogue(n: int) -> list[dict]:
    """u0, a1, u2, a3, ... : role alternates from the user, text is the role initial + index."""
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "text": f"{'ua'[i % 2]}{i}"}
        for i in range(n)
    ]


def _texts(chat: list[dict]) -> list[str]:
    return [m["content"] for m in chat[1:]]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random")


@pytest.mark.parametrize(
    ("n_messages", "pairs", "expected"),
    [
        (7, 2, ["u4", "a5", "u6"]),  # window a3 u4 a5 u6: the leading assistant is dropped
        (7, 5, ["u0", "a1", "u2", "a3", "u4", "a5", "u6"]),  # shorter than the window
        (11, 5, ["u2", "a3", "u4", "a5", "u6", "a7", "u8", "a9", "u10"]),
        (10, 2, ["u6", "a7", "u8", "a9"]),  # ends at an assistant turn: window starts with user
        (1, 1, ["u0"]),
        (7, 0, []),
        (0, 5, []),
    ],
)
def test_build_chat_keeps_the_last_pairs(n_messages, pairs, expected):
    assert _texts(build_chat(_dialogue(n_messages), "sys", pairs)) == expected


def test_build_chat_roles_system_first_and_message_objects():
    history = [Message(role="assistant", text="Welcome home."), Message(role="user", text="Hi")]
    chat = build_chat(history, "Be brief.", 5)
    assert chat == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]


@pytest.mark.parametrize("system_prompt", [None, ""])
def test_missing_system_prompt_becomes_an_empty_system_message(system_prompt):
    assert build_chat(_dialogue(1), system_prompt)[0] == {"role": "system", "content": ""}


def test_bad_message_names_the_field():
    with pytest.raises(DataError, match=r"field 'messages\.1\.role'"):
        build_chat([{"role": "user", "text": "a"}, {"role": "robot", "text": "b"}], None)
    with pytest.raises(DataError, match=r"field 'messages\.0\.text'"):
        build_chat([{"role": "user", "content": "a"}], None)


def test_negative_context_is_rejected():
    with pytest.raises(AdaptCommandError, match="max_context_messages"):
        build_chat(_dialogue(3), None, -1)


def test_render_prompt_is_chatml_ending_with_the_assistant_header(tokenizer):
    prompt = render_prompt(tokenizer, _dialogue(3), "Be brief.", 5)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nu0<|im_end|>\n"
        "<|im_start|>assistant\na1<|im_end|>\n"
        "<|im_start|>user\nu2<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_render_prompt_without_system_prompt_hides_the_template_default(tokenizer):
    prompt = render_prompt(tokenizer, _dialogue(1), None)
    assert prompt.startswith("<|im_start|>system\n<|im_end|>\n")
    assert "SmolLM" not in prompt


def test_render_prompt_needs_a_chat_template(tokenizer):
    plain = load_tokenizer("tiny-random")
    plain.chat_template = None
    with pytest.raises(AdaptCommandError, match="chat template"):
        render_prompt(plain, _dialogue(1), None)


def _choices(annotation: object) -> list[str]:
    """String values of a `Literal[...] | None` field annotation."""
    return [
        value
        for arg in typing.get_args(annotation)
        for value in typing.get_args(arg)
        if isinstance(value, str)
    ]


def test_default_system_prompt_names_every_device_and_choice():
    prompt = DEFAULT_SYSTEM_PROMPT.lower()
    for device, model in DEVICE_MODELS.items():
        assert device in prompt
        for name, field in model.model_fields.items():
            assert name.replace("_", " ") in prompt
            for choice in _choices(field.annotation):
                assert choice.lower() in prompt, (device, name, choice)
