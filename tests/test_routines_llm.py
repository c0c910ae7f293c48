"""`--method llm`: schema-constrained routine reconstruction by a language model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptcommand.data.io import RoutinesLine, load_split
from adaptcommand.models.loading import load_model
from adaptcommand.routines.llm import (
    LlmSettings,
    SchemaMask,
    complete_routines,
    grammar_matchers,
    grammar_tokenizer,
    history_prompt,
    predict_with_model,
    prompt_budget,
    routines_grammar,
    routines_json_schema,
    session_block,
)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


@pytest.fixture(scope="module")
def train(synthetic_data: Path):
    return load_split(synthetic_data, "train")


def test_schema_has_no_nulls_and_bounds_the_routines():
    schema = routines_json_schema(5)
    text = json.dumps(schema)
    assert '"null"' not in text and '"default"' not in text
    assert schema["properties"]["routines"]["maxItems"] == 5
    assert schema["$defs"]["AC"]["properties"]["temperature"] == {
        "maximum": 30, "minimum": 16, "type": "integer", "title": "Temperature"}


def test_masked_random_walks_always_give_schema_valid_routines(tiny):
    """Random logits through the mask (any model's worst case): every answer, finished or cut
    by the budget and completed, parses under the schema with at most max_routines."""
    vocab = tiny.model.config.vocab_size
    eos = tiny.end_of_turn_ids
    ll_tokenizer = grammar_tokenizer(tiny.tokenizer, vocab, tuple(eos))
    grammar = routines_grammar(3)
    generator = torch.Generator().manual_seed(0)
    seen_routines = 0
    for budget in (30, 160):
        matchers = grammar_matchers(ll_tokenizer, grammar, 3)
        mask = SchemaMask(matchers, vocab, prompt_width=1)
        ids = torch.zeros((3, 1), dtype=torch.long)
        for _ in range(budget):
            scores = mask(ids, torch.randn((3, vocab), generator=generator))
            ids = torch.cat([ids, scores.argmax(dim=1, keepdim=True)], dim=1)
        for row in range(len(matchers)):
            tokens = [t for t in ids[row, 1:].tolist() if t not in eos]
            text = complete_routines(tiny.tokenizer.decode(tokens))
            line = RoutinesLine.model_validate(json.loads(text))
            assert len(line.routines) <= 3
            seen_routines += len(line.routines)
    assert seen_routines > 0  # the walks did produce routines, not only empty lists


def test_complete_routines_keeps_whole_routines():
    whole = '{"triggers":{"weather":"rainy"},"actions":{"ac":{"temperature":22}}}'
    cut = '{"routines":[' + whole + ',{"triggers":{"time_of_day":"eve'
    assert json.loads(complete_routines(cut)) == {"routines": [json.loads(whole)]}
    assert complete_routines('{"routines":[{"trig') == '{"routines":[]}'
    assert complete_routines('{"routines":[]}') == '{"routines":[]}'


def test_prediction_is_schema_valid_deterministic_and_leak_free(tiny, train):
    settings = LlmSettings(model="tiny-random", max_new_tokens=32, max_prompt_tokens=500,
                           batch_size=2)
    first = predict_with_model(tiny, train, settings)
    again = predict_with_model(tiny, train, settings)
    assert first.answers == again.answers and first.routines == again.routines
    assert set(first.routines) == set(train)
    for answer in first.answers.values():
        RoutinesLine.model_validate(json.loads(answer))
    blanked = {pid: [d.model_copy(update={"routines": None, "applied_routines": None,
                                          "character": None}) for d in sessions]
               for pid, sessions in train.items()}
    leak_free = predict_with_model(tiny, blanked, settings)
    assert {p: x.text for p, x in leak_free.prompts.items()} == {
        p: x.text for p, x in first.prompts.items()}
    assert leak_free.answers == first.answers


def test_session_block_reads_only_meta_and_messages(train):
    dialogue = next(iter(train.values()))[0]
    block = session_block(dialogue)
    assert block.startswith(f"Session (time_of_day={dialogue.meta.time_of_day}, ")
    assert dialogue.messages[-1].text in block
    assert "applied" not in block and "routines" not in block


def test_truncation_keeps_the_most_recent_sessions_within_budget(tiny, train):
    persona, sessions = next(iter(train.items()))
    full = history_prompt(tiny.tokenizer, persona, sessions, 100_000)
    assert full.sessions_used == len(sessions)
    budget = full.tokens - 1  # one token short: the oldest session must go
    cut = history_prompt(tiny.tokenizer, persona, sessions, budget)
    assert cut.tokens <= budget
    assert 0 < cut.sessions_used < len(sessions)
    assert len(tiny.tokenizer(cut.text, add_special_tokens=False)["input_ids"]) == cut.tokens
    kept = sessions[-cut.sessions_used:]
    assert all(session_block(d) in cut.text for d in kept)
    assert session_block(sessions[0]) not in cut.text
    # the budget leaves room for the answer inside the model's context
    settings = LlmSettings(max_new_tokens=512, max_prompt_tokens=4096)
    assert prompt_budget(tiny, settings) == tiny.model.config.max_position_embeddings - 512
    assert prompt_budget(tiny, LlmSettings(max_prompt_tokens=300)) == 300


def test_schema_mask_follows_the_chosen_tokens():
    """The mask is a pure function of the tokens so far: a bitmask with one allowed token
    leaves exactly that token finite."""
    class OneToken:
        def is_stopped(self) -> bool:
            return False

        def consume_token(self, token: int) -> bool:
            return True

        def unsafe_compute_mask_ptr(self, pointer: int, size: int) -> None:
            words = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_int32 * (size // 4))
                                          .from_address(pointer))
            words[:] = 0
            words[1] = 1 << 3  # token 35

    mask = SchemaMask([OneToken()], 70, prompt_width=2)
    scores = mask(torch.zeros((1, 2), dtype=torch.long), torch.zeros((1, 70)))
    assert torch.isfinite(scores).nonzero().tolist() == [[0, 35]]
