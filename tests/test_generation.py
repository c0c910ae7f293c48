"""Generation: batching never shows in the output, end-of-turn stops, seeded sampling, adapters."""

from __future__ import annotations

import time

import pytest
import torch
from peft import LoraConfig, PeftModel, PrefixTuningConfig, get_peft_model
from pydantic import ValidationError
from transformers import PreTrainedTokenizerBase

from adaptcommand.errors import AdaptCommandError
from adaptcommand.models.adapters import BASE
from adaptcommand.models.continuous import RESERVED_COLUMNS, _Schedule, _Span, prompt_parents
from adaptcommand.models.generation import (
    GenerationSettings,
    decode_reply,
    generate,
    generation_config,
)
from adaptcommand.models.loading import load_model
from adaptcommand.models.prefix_cache import (
    batch_inputs,
    build_prefix_cache,
    common_prefix_length,
    uses_prompt_learning,
)
from adaptcommand.models.prompting import DEFAULT_SYSTEM_PROMPT, render_prompt

GREEDY = GenerationSettings(max_new_tokens=12, batch_size=2)
USER_TURNS = [
    "Lights to 40 please.",
    "It is cold, can you set the AC to heat at 24 degrees with fan speed 2 and dim the lights?",
    "TV on Netflix.",
    "Arm the security system and set the alarm volume to 70, I am leaving for the weekend now.",
    "Speaker on bass boost.",
]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random", device="cpu")


@pytest.fixture(scope="module")
def prompts(tiny):
    return [render_prompt(tiny.tokenizer, [{"role": "user", "text": t}], None) for t in USER_TURNS]


def _one_by_one(model, tokenizer, prompts, settings, **kwargs):
    """The reference: transformers' own `generate`, one prompt at a time."""
    static = settings.model_copy(update={"continuous_batching": False})
    return [generate(model, tokenizer, [p], static, **kwargs)[0] for p in prompts]


def test_batched_greedy_equals_one_at_a_time(tiny, prompts):
    single = _one_by_one(tiny.model, tiny.tokenizer, prompts, GREEDY)
    assert all(single) and len(set(single)) == len(prompts)  # real, distinct replies
    for batch_size in (2, 3, 8):
        settings = GREEDY.model_copy(update={"batch_size": batch_size})
        assert generate(tiny.model, tiny.tokenizer, prompts, settings) == single


def test_replies_come_back_in_prompt_order(tiny, prompts):
    forward = generate(tiny.model, tiny.tokenizer, prompts, GREEDY)
    backward = generate(tiny.model, tiny.tokenizer, prompts[::-1], GREEDY)
    assert backward == forward[::-1]


def test_generation_stops_at_the_first_end_of_turn_token(tiny, prompts):
    encoded = tiny.tokenizer(prompts[0], return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        output = tiny.model.generate(**encoded, generation_config=generation_config(GREEDY, 2, []))
    free_run = output[0, encoded["input_ids"].shape[1] :].tolist()
    stop = free_run[4]
    expected = tiny.tokenizer.decode(free_run[: free_run.index(stop)]).strip()
    reply = generate(tiny.model, tiny.tokenizer, prompts[:1], GREEDY, end_of_turn_ids=[stop])
    assert reply == [expected]
    assert len(expected) < len(tiny.tokenizer.decode(free_run))


def test_decode_reply_cuts_at_stop_and_drops_special_tokens(tiny):
    tokenizer = tiny.tokenizer
    words = tokenizer("Lights at forty", add_special_tokens=False)["input_ids"]
    tokens = [*words, 2, 2, 2]
    assert decode_reply(tokenizer, [1, *tokens], [2]) == "Lights at forty"
    assert decode_reply(tokenizer, [*words, 9999, 77], [9999]) == "Lights at forty"


def test_sampling_is_reproducible_from_the_seed(tiny, prompts):
    sampled = GREEDY.model_copy(update={"do_sample": True, "seed": 5})
    first = generate(tiny.model, tiny.tokenizer, prompts, sampled)
    assert generate(tiny.model, tiny.tokenizer, prompts, sampled) == first
    reseeded = sampled.model_copy(update={"seed": 6})
    assert generate(tiny.model, tiny.tokenizer, prompts, reseeded) != first
    assert first != generate(tiny.model, tiny.tokenizer, prompts, GREEDY)


def test_model_generation_defaults_do_not_leak_into_greedy(tiny, prompts):
    baseline = generate(tiny.model, tiny.tokenizer, prompts[:2], GREEDY)
    defaults = tiny.model.generation_config
    saved = defaults.to_dict()
    defaults.update(do_sample=True, repetition_penalty=3.0, top_k=5, temperature=2.0)
    try:
        assert generate(tiny.model, tiny.tokenizer, prompts[:2], GREEDY) == baseline
    finally:
        defaults.update(**saved)


def test_generation_config_uses_sampling_knobs_only_when_sampling():
    greedy = generation_config(GenerationSettings(), pad_id=2, stop_ids=[2, 0])
    assert (greedy.do_sample, greedy.repetition_penalty, greedy.max_new_tokens) == (False, 1.0, 64)
    assert greedy.eos_token_id == [2, 0]
    sampled = generation_config(GenerationSettings(do_sample=True), pad_id=2, stop_ids=[2])
    assert (sampled.temperature, sampled.top_p, sampled.top_k) == (0.7, 0.9, 0)
    assert sampled.repetition_penalty == 1.1


def test_settings_are_validated():
    with pytest.raises(ValidationError):
        GenerationSettings(batch_size=0)
    with pytest.raises(ValidationError):
        GenerationSettings(top_p=1.5)
    with pytest.raises(ValidationError):
        GenerationSettings(beams=4)


def test_empty_prompt_list_and_adapter_count_mismatch(tiny, prompts):
    assert generate(tiny.model, tiny.tokenizer, [], GREEDY) == []
    with pytest.raises(AdaptCommandError, match="2 adapter names for 1 prompts"):
        generate(tiny.model, tiny.tokenizer, prompts[:1], GREEDY, adapter_names=["a", "b"])


def two_lora_model(seed: int) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """tiny-random with two random (non-zero) LoRA adapters, alice and bob, in eval mode."""
    base = load_model("tiny-random", device="cpu")
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(seed)
    model = get_peft_model(base.model, config, adapter_name="alice")
    model.add_adapter("bob", config)
    model.eval()
    return model, base.tokenizer


def test_mixed_adapter_batch_matches_each_adapter_alone(prompts):
    model, tokenizer = two_lora_model(1)
    names = ["alice", "bob", "alice", "bob", "bob"]
    mixed = generate(model, tokenizer, prompts, GREEDY, adapter_names=names)
    alone = {
        name: _one_by_one(model, tokenizer, prompts, GREEDY, adapter_names=[name])
        for name in ("alice", "bob")
    }
    assert mixed == [alone[name][i] for i, name in enumerate(names)]
    assert alone["alice"] != alone["bob"]


@pytest.mark.slow
def test_embedded_model_replies_in_text():
    start = time.perf_counter()
    loaded = load_model("embedded")
    prompt = render_prompt(
        loaded.tokenizer,
        [{"role": "user", "text": "Please set the living room lights to 40% brightness."}],
        DEFAULT_SYSTEM_PROMPT,
    )
    settings = GenerationSettings(max_new_tokens=24)
    reply = generate(loaded.model, loaded.tokenizer, [prompt], settings,
                     end_of_turn_ids=loaded.end_of_turn_ids)[0]
    elapsed = time.perf_counter() - start
    print(f"embedded load + 24-token reply: {elapsed:.1f}s: {reply!r}")
    assert len(reply.split()) >= 3
    assert "<|im_end|>" not in reply and "<|im_start|>" not in reply


# --- prefix cache: the shared system-prompt KV is prefilled once, outputs never change -------

CACHED = GenerationSettings(max_new_tokens=12, batch_size=2)
UNCACHED = CACHED.model_copy(update={"prefix_cache": False})


def _system_prompts(tokenizer, system_prompt, turns=USER_TURNS):
    return [
        render_prompt(tokenizer, [{"role": "user", "text": t}], system_prompt) for t in turns
    ]


def _encode(tokenizer, prompts):
    return tokenizer(prompts, add_special_tokens=False)["input_ids"]


def test_common_prefix_length_stops_before_the_shortest_prompt_ends():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5, 6]]) == 3
    assert common_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert common_prefix_length([[7, 2], [8, 2]]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 2


def test_prefix_cache_replies_equal_uncached_and_one_at_a_time(tiny):
    prompts = _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT)
    encoded = _encode(tiny.tokenizer, prompts)
    assert len({len(ids) for ids in encoded}) == len(prompts)  # tails need padding
    prefix = build_prefix_cache(tiny.model, encoded, None)
    assert prefix is not None and len(prefix.ids) > 150  # the whole system prompt is shared
    single = _one_by_one(tiny.model, tiny.tokenizer, prompts, UNCACHED)
    assert all(single) and len(set(single)) >= 3  # real replies that depend on the tail
    for batch_size in (1, 2, 3, 8):  # several batches of one call reuse the one prefix
        settings = CACHED.model_copy(update={"batch_size": batch_size})
        assert generate(tiny.model, tiny.tokenizer, prompts, settings) == single
        assert generate(tiny.model, tiny.tokenizer, prompts, UNCACHED.model_copy(
            update={"batch_size": batch_size})) == single


def test_batch_layout_puts_padding_between_prefix_and_tail(tiny):
    prompts = _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT)[:2]
    encoded = _encode(tiny.tokenizer, prompts)
    prefix = build_prefix_cache(tiny.model, encoded, None)
    batch = batch_inputs(tiny.tokenizer, encoded, None, prefix, tiny.model.device)
    n = len(prefix.ids)
    short, long = sorted(range(2), key=lambda i: len(encoded[i]))
    pads = len(encoded[long]) - len(encoded[short])
    assert batch["input_ids"][long].tolist() == encoded[long]
    assert batch["input_ids"][short, :n].tolist() == prefix.ids
    assert batch["input_ids"][short, n + pads :].tolist() == encoded[short][n:]
    assert batch["attention_mask"][short].tolist() == [1] * n + [0] * pads + [1] * (
        len(encoded[short]) - n)
    assert batch["cache"].get_seq_length() == n
    assert prefix.cache.layers[0].keys.shape[0] == 1  # the stored prefix is not grown


def test_different_system_prompts_share_only_what_they_share(tiny):
    other = _system_prompts(tiny.tokenizer, "You are a pirate.", USER_TURNS[:2])
    default = _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT, USER_TURNS[2:])
    assert build_prefix_cache(tiny.model, _encode(tiny.tokenizer, other + default), None) is None
    memory = _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT + " Earlier: lights 40.",
                             USER_TURNS[:2])
    mixed = memory + default
    prefix = build_prefix_cache(tiny.model, _encode(tiny.tokenizer, mixed), None)
    assert prefix is not None and tiny.tokenizer.decode(prefix.ids).endswith(DEFAULT_SYSTEM_PROMPT)
    for prompts in (other + default, mixed):
        single = _one_by_one(tiny.model, tiny.tokenizer, prompts, UNCACHED)
        assert generate(tiny.model, tiny.tokenizer, prompts, CACHED) == single


def test_prefix_cache_with_mixed_adapters_and_the_base_model(tiny):
    model, _ = two_lora_model(2)
    prompts = _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT)
    names = ["bob", BASE, "alice", "bob", BASE]
    prefix = build_prefix_cache(model, _encode(tiny.tokenizer, prompts), names)
    assert prefix is not None and prefix.rows == {"bob": 0, BASE: 1, "alice": 2}
    values = prefix.cache.layers[0].values  # LoRA on v_proj: each adapter has its own row
    assert not torch.equal(values[0], values[1]) and not torch.equal(values[1], values[2])
    alone = {
        name: _one_by_one(model, tiny.tokenizer, prompts, UNCACHED, adapter_names=[name])
        for name in ("alice", "bob", BASE)
    }
    expected = [alone[name][i] for i, name in enumerate(names)]
    assert len({alone["alice"][0], alone["bob"][0], alone[BASE][0]}) == 3
    assert alone[BASE] == _one_by_one(tiny.model, tiny.tokenizer, prompts, UNCACHED)
    for batch_size in (2, 5):
        settings = CACHED.model_copy(update={"batch_size": batch_size})
        assert generate(model, tiny.tokenizer, prompts, settings, adapter_names=names) == expected


def test_prompt_learning_adapters_disable_the_prefix_cache(tiny):
    base = load_model("tiny-random", device="cpu")
    model = get_peft_model(base.model, PrefixTuningConfig(task_type="CAUSAL_LM",
                                                          num_virtual_tokens=4))
    encoded = _encode(tiny.tokenizer, _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT))
    assert uses_prompt_learning(model) and not uses_prompt_learning(tiny.model)
    assert build_prefix_cache(model, encoded, None) is None


def test_sampling_with_prefix_cache_is_seeded(tiny):
    prompts = _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT)
    sampled = CACHED.model_copy(update={"do_sample": True, "seed": 3})
    first = generate(tiny.model, tiny.tokenizer, prompts, sampled)
    assert generate(tiny.model, tiny.tokenizer, prompts, sampled) == first
    assert first != generate(tiny.model, tiny.tokenizer, prompts, CACHED)


@pytest.mark.slow
def test_embedded_model_prefix_cache_gives_identical_replies():
    loaded = load_model("embedded")
    turns = [*USER_TURNS[:3], "Hi"]
    prompts = _system_prompts(loaded.tokenizer, DEFAULT_SYSTEM_PROMPT, turns)
    settings = GenerationSettings(max_new_tokens=16, batch_size=3)
    kwargs = {"end_of_turn_ids": loaded.end_of_turn_ids}
    single = _one_by_one(loaded.model, loaded.tokenizer, prompts,
                         settings.model_copy(update={"prefix_cache": False}), **kwargs)
    assert all(single)
    assert generate(loaded.model, loaded.tokenizer, prompts, settings, **kwargs) == single


# --- continuous batching and prompt-prefix reuse: fewer wasted steps, the same replies --------

STATIC = GenerationSettings(max_new_tokens=12, batch_size=1, prefix_cache=False,
                            continuous_batching=False)


def _session_prompts(tokenizer, system_prompt=DEFAULT_SYSTEM_PROMPT):
    """Every assistant turn of two sessions: each later prompt extends the earlier ones."""
    prompts = []
    for session in (USER_TURNS[:3], USER_TURNS[2:]):
        messages = []
        for text in session:
            messages.append({"role": "user", "text": text})
            prompts.append(render_prompt(tokenizer, messages, system_prompt))
            messages.append({"role": "assistant", "text": f"Done: {text.lower()}"})
    return prompts


def _stop_mid_reply(tiny, prompts):
    """A token some free-running replies produce early and others late or never, so rows of
    one batch end at different steps."""
    runs = [tiny.model.generate(**tiny.tokenizer(p, return_tensors="pt", add_special_tokens=False),
                                generation_config=generation_config(STATIC, 2, []))
            for p in prompts]
    free = [run[0, -STATIC.max_new_tokens:].tolist() for run in runs]
    for token in {t for reply in free for t in reply[1:8]}:
        ends = {reply.index(token) if token in reply else None for reply in free}
        if len(ends) >= 3:
            return token
    raise AssertionError("no token ends the replies at different steps")


def test_prompt_parents_find_the_longest_earlier_prompt_of_the_same_adapter():
    encoded = [[1, 2], [1, 2, 3], [1, 2, 3, 4], [1, 5], [1, 2, 3, 4, 9], [7]]
    assert prompt_parents(encoded, None) == [None, 0, 1, None, 2, None]
    names = ["a", "a", "b", "a", "b", "a"]
    assert prompt_parents(encoded, names) == [None, 0, None, None, 2, None]
    assert prompt_parents([[1, 2], [1, 2]], None) == [None, 0]  # duplicates chain


def _joins(schedule, slots):
    """Join order and the most parents' key/values held at once, `slots` prompts a round."""
    order, peak = [], 0
    while schedule.ready:
        joining = schedule.take(slots)
        schedule.joined(joining, [_Span(0, [])] * len(joining))
        order += joining
        peak = max(peak, len(schedule.spans))
    return order, peak


def test_children_join_right_after_their_parent_and_parents_are_freed_early():
    # 20 sessions of 4 turns each: turn k of a session extends its turn k-1.
    parents = [None if i % 4 == 0 else i - 1 for i in range(80)]
    order, peak = _joins(_Schedule(parents, [100 + i % 4 for i in range(80)]), slots=2)
    assert sorted(order) == list(range(80))
    assert all(order.index(parent) < order.index(child)
               for child, parent in enumerate(parents) if parent is not None)
    assert peak <= 2  # was 20: every session's first turn held until all of them had joined
    schedule = _Schedule(parents, [100] * 80)
    first = schedule.take(1)
    schedule.joined(first, [_Span(0, [])])
    assert schedule.take(1) == [first[0] + 1]  # the child joins next, ahead of other roots
    schedule = _Schedule([None, 0, 0, 1], [5, 6, 6, 7])  # two children of one parent
    assert _joins(schedule, 1) == ([0, 1, 3, 2], 2)
    assert schedule.spans == {}


def test_continuous_batching_refills_rows_and_replies_equal_one_at_a_time(tiny):
    prompts = _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT) + _system_prompts(
        tiny.tokenizer, None)
    stop = _stop_mid_reply(tiny, prompts)
    single = _one_by_one(tiny.model, tiny.tokenizer, prompts, STATIC, end_of_turn_ids=[stop])
    assert len({len(reply) for reply in single}) >= 3  # replies end at different steps
    for batch_size in (1, 2, 3, 16):
        for prefix_cache in (False, True):
            settings = CACHED.model_copy(update={"batch_size": batch_size,
                                                 "prefix_cache": prefix_cache})
            assert generate(tiny.model, tiny.tokenizer, prompts, settings,
                            end_of_turn_ids=[stop]) == single


def test_session_prompts_reuse_their_parents_key_values(tiny):
    prompts = _session_prompts(tiny.tokenizer)
    parents = prompt_parents(_encode(tiny.tokenizer, prompts), None)
    assert parents == [None, 0, 1, None, 3, 4]  # each turn extends the session's previous one
    single = _one_by_one(tiny.model, tiny.tokenizer, prompts, STATIC)
    assert len(set(single)) >= 3
    for batch_size in (1, 2, 6):
        settings = CACHED.model_copy(update={"batch_size": batch_size})
        assert generate(tiny.model, tiny.tokenizer, prompts, settings) == single


def test_continuous_batching_with_mixed_adapters_shares_prefixes_per_adapter(tiny):
    model, _ = two_lora_model(3)
    prompts = _session_prompts(tiny.tokenizer)
    names = ["alice", "alice", "bob", BASE, BASE, "alice"]
    alone = {name: _one_by_one(model, tiny.tokenizer, prompts, STATIC, adapter_names=[name])
             for name in ("alice", "bob", BASE)}
    expected = [alone[name][i] for i, name in enumerate(names)]
    for batch_size in (2, 6):
        settings = CACHED.model_copy(update={"batch_size": batch_size})
        assert generate(model, tiny.tokenizer, prompts, settings, adapter_names=names) == expected


def test_long_replies_outgrow_the_reserved_cache_columns(tiny, prompts):
    settings = CACHED.model_copy(update={"max_new_tokens": 2 * RESERVED_COLUMNS + 5,
                                         "batch_size": 2})
    single = _one_by_one(tiny.model, tiny.tokenizer, prompts[:3], settings)
    assert max(len(tiny.tokenizer(r)["input_ids"]) for r in single) > 2 * RESERVED_COLUMNS
    assert generate(tiny.model, tiny.tokenizer, prompts[:3], settings) == single


def test_replies_stream_out_as_they_end(tiny):
    prompts = _system_prompts(tiny.tokenizer, DEFAULT_SYSTEM_PROMPT)
    stop = _stop_mid_reply(tiny, prompts)
    for settings in (CACHED, CACHED.model_copy(update={"continuous_batching": False})):
        streamed: list[tuple[int, str]] = []
        replies = generate(tiny.model, tiny.tokenizer, prompts, settings, end_of_turn_ids=[stop],
                           on_reply=lambda i, text, sink=streamed: sink.append((i, text)))
        assert sorted(streamed) == list(enumerate(replies))  # each reply once, as returned
