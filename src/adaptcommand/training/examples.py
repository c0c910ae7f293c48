"""Dialogues -> training examples, loss on assistant replies only.

Every assistant turn is learned from exactly the prompt evaluation feeds the model
(models.prompting.render_prompt over the preceding messages); its target is the reply followed
by the token the chat template closes an assistant turn with, so the model learns to stop where
evaluation expects it to.

Two units (`data.example_unit`). `turn`: one example per assistant turn, so a session of
n replies encodes its first messages n times. `session`: consecutive turns share one sequence
whenever a turn's prompt starts with the previous turn's prompt + target, token for token; each
reply is then supervised inside that sequence with the very tokens before it that its per-turn
example would have, so the objective is unchanged while early messages are encoded once. A turn
whose prompt does not extend the sequence (its context window has slid past the session's
start, the chat template renders earlier turns differently, ...) opens a new sequence, and a
turn too long for `max_length` gets its truncated per-turn example, as with `turn`.

A turn may be left unlearned (`Unlearned`): its reply stays in the context of later turns, as
in evaluation, but no example is supervised on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from transformers import PreTrainedTokenizerBase

from adaptcommand.data.schema import CleanDialogue
from adaptcommand.models.prompting import ProfileText, render_prompt
from adaptcommand.training.batching import IGNORE_INDEX, Example

ExampleUnit = Literal["session", "turn"]
TurnIds = tuple[list[int], list[int], bool]  # (prompt ids, target ids, learned) of one reply
SessionProfile = Callable[[CleanDialogue], ProfileText | None]
"""The profile/context text of a session's prompts (models.profile_prompt), or None."""
Unlearned = Callable[[CleanDialogue, int], bool]
"""Whether the assistant message at this index of the dialogue is left unsupervised."""

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


def dialogue_turns(tokenizer: PreTrainedTokenizerBase, dialogue: CleanDialogue, *,
                   end_of_turn_id: int, system_prompt: str | None,
                   max_context_messages: int, profile: ProfileText | None = None,
                   unlearned: Unlearned | None = None) -> Iterator[TurnIds]:
    """(prompt ids, target ids, learned) of each assistant turn, in order, untruncated."""
    for index, message in enumerate(dialogue.messages):
        if message.role != "assistant":
            continue
        prompt = render_prompt(tokenizer, dialogue.messages[:index], system_prompt,
                               max_context_messages, profile)
        yield (tokenizer(prompt, add_special_tokens=False)["input_ids"],
               tokenizer(message.text, add_special_tokens=False)["input_ids"] + [end_of_turn_id],
               not (unlearned and unlearned(dialogue, index)))


def session_examples(turns: Iterable[TurnIds], max_length: int) -> list[Example]:
    """One session's turns, chained into shared sequences where that changes no turn's context.

    A chain's ids are always the last chained turn's prompt + target, so a chain never exceeds
    the longest untruncated per-turn example it replaces.
    """
    examples: list[Example] = []
    ids: list[int] = []
    labels: list[int] = []
    for prompt, target, learned in turns:
        if len(prompt) + len(target) > max_length:
            if learned:
                examples.append(turn_example(prompt, target, max_length))
            continue
        if prompt[:len(ids)] != ids:  # this turn's context is not the chain so far
            _close(examples, ids, labels)
            ids, labels = [], []
        labels += [IGNORE_INDEX] * (len(prompt) - len(ids))
        labels += target if learned else [IGNORE_INDEX] * len(target)
        ids = prompt + target
    _close(examples, ids, labels)
    return examples


def _close(examples: list[Example], ids: list[int], labels: list[int]) -> None:
    """Keep a finished chain up to its last supervised token, if it supervises anything
    (unlearned replies at its end would be context for nothing)."""
    end = max((p + 1 for p, label in enumerate(labels) if label != IGNORE_INDEX), default=0)
    if end:
        examples.append(Example(tuple(ids[:end]), tuple(labels[:end])))


def build_examples(tokenizer: PreTrainedTokenizerBase, dialogues: Iterable[CleanDialogue], *,
                   end_of_turn_id: int, system_prompt: str | None, max_context_messages: int,
                   max_length: int, unit: ExampleUnit = "turn",
                   profiles: SessionProfile | None = None,
                   unlearned: Unlearned | None = None) -> list[Example]:
    """Examples of every dialogue, in order: one per assistant turn (`unit="turn"`), or per
    session where the context allows (`"session"`, see the module doc). Training runs pass
    TrainingConfig.data.example_unit (default session); the per-turn default serves callers that
    need one example per turn, such as a Trainer baseline. `profiles` gives each session's
    profile/context text, placed in its prompts exactly as evaluation places it; `unlearned`
    picks replies that are context only."""
    examples: list[Example] = []
    for dialogue in dialogues:
        turns = dialogue_turns(tokenizer, dialogue, end_of_turn_id=end_of_turn_id,
                               system_prompt=system_prompt,
                               max_context_messages=max_context_messages,
                               profile=profiles(dialogue) if profiles else None,
                               unlearned=unlearned)
        if unit == "session":
            examples += session_examples(turns, max_length)
        else:
            examples += [turn_example(prompt, target, max_length)
                         for prompt, target, learned in turns if learned]
    return examples
