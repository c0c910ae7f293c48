"""Routine reconstruction by a language model, run the way EdgeWisePersona's authors run it.

The user's history (each session's context `meta` and its messages, nothing else) goes into one
prompt, cut to the model's context by dropping the oldest sessions, and the model answers with
`{"routines": [...]}` greedily. Decoding is constrained by llguidance to the JSON schema of
`data.schema.Routine` (compact JSON, closed objects, enums and value ranges enforced), so every
answer parses and validates: the only freedom the model has is in the values. It is the
comparison row for the miner, with any `--model`.

Leak rule: only `messages` and `meta` of the dialogues given are read; `routines`,
`applied_routines` and summaries never reach the prompt (tested by blanking them).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from adaptcommand.config import StrictModel
from adaptcommand.data.io import RoutinesLine, SplitName
from adaptcommand.data.schema import CleanDialogue, Routine
from adaptcommand.errors import AdaptCommandError

if TYPE_CHECKING:  # torch and transformers take seconds to import
    import torch
    from transformers import PreTrainedTokenizerBase

    from adaptcommand.models.loading import LoadedModel

ROUTINES_SYSTEM_PROMPT = (
    "You read a smart-home user's past sessions with their assistant. Each session starts with "
    "its context: time_of_day, day_of_week, sun_phase, weather, outdoor_temp. Infer the user's "
    "routines: a routine is a context (triggers; leave out the fields that do not matter) and "
    "the device settings the user wants in it (actions on tv, ac, lights, speaker, security, "
    "with their exact values). Answer with JSON only: "
    '{"routines": [{"triggers": {...}, "actions": {...}}, ...]}'
)
HISTORY_HEADER = "Sessions, oldest first:"
CONTEXT_FIELDS = ("time_of_day", "day_of_week", "sun_phase", "weather", "outdoor_temp")


class LlmSettings(StrictModel):
    """Knobs of `--method llm`; decoding is always greedy."""

    model: str = Field("embedded", description="Model name as `load_model` takes it.")
    device: str = Field("auto", description="auto: CUDA when present, else the CPU.")
    dtype: str = Field("auto", description="auto: bf16 on CUDA, fp32 on the CPU.")
    max_routines: int = Field(8, ge=1, description="Most routines per user (the schema's "
                              "maxItems; the real data has about 4).")
    max_new_tokens: int = Field(768, ge=16, description="Answer budget; an answer cut here "
                                "keeps its complete routines (about 100 tokens each).")
    max_prompt_tokens: int | None = Field(None, ge=64, description="Cap on the prompt below "
                                          "the model's context (CPU time grows with it).")
    batch_size: int = Field(4, ge=1, description="Users generated together.")
    seed: int = 0


@dataclass(frozen=True)
class LlmPrompt:
    """One user's prompt and how much of their history it holds."""

    persona_id: str
    text: str
    tokens: int
    sessions_used: int
    sessions_given: int


def routines_json_schema(max_routines: int) -> dict[str, Any]:
    """JSON schema of `{"routines": [Routine]}` from the pydantic models, with every optional
    field written as "may be absent" instead of "may be null": the compact form the dataset
    uses, and fewer tokens for the model to spend."""
    routine = _without_nulls(Routine.model_json_schema())
    definitions = routine.pop("$defs")
    return {
        "type": "object",
        "properties": {"routines": {"type": "array", "items": routine,
                                    "maxItems": max_routines}},
        "required": ["routines"],
        "additionalProperties": False,
        "$defs": definitions,
    }


def _without_nulls(node: Any) -> Any:
    """`anyOf: [X, {"type": "null"}]` -> X and `default: null` dropped, recursively."""
    if isinstance(node, list):
        return [_without_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    options = node.get("anyOf")
    if options is not None:
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            rest = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
            return _without_nulls({**rest, **kept[0]})
    return {k: _without_nulls(v) for k, v in node.items()
            if not (k == "default" and v is None)}


def session_block(dialogue: CleanDialogue) -> str:
    """One session as the prompt shows it: its context line, then `role: text` lines. Reads
    only `meta` and `messages` (the leak rule)."""
    meta = dialogue.meta
    context = (", ".join(f"{name}={getattr(meta, name)}" for name in CONTEXT_FIELDS)
               if meta is not None else "unknown")
    lines = [f"Session ({context}):"]
    lines += [f"{message.role}: {message.text}" for message in dialogue.messages]
    return "\n".join(lines)


def history_prompt(
    tokenizer: PreTrainedTokenizerBase,
    persona: str,
    dialogues: Sequence[CleanDialogue],
    budget: int,
) -> LlmPrompt:
    """The chat prompt with the most recent sessions that fit in `budget` tokens (counted with
    the model's tokenizer, chat template included), oldest of them first."""
    from adaptcommand.models.prompting import render_prompt

    def render(blocks: Sequence[str]) -> str:
        history = "\n\n".join([HISTORY_HEADER, *blocks])
        return render_prompt(tokenizer, [{"role": "user", "text": history}],
                             ROUTINES_SYSTEM_PROMPT, max_context_messages=1)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    fixed = count(render([]))
    if fixed > budget:
        raise AdaptCommandError(f"the routines prompt alone takes {fixed} tokens, more than the "
                                f"{budget} the model's context leaves; raise max_prompt_tokens")
    blocks: list[str] = []
    used = fixed
    for dialogue in reversed(dialogues):  # newest first, until the budget is spent
        block = session_block(dialogue)
        cost = count("\n\n" + block)
        if used + cost > budget:
            break
        blocks.insert(0, block)
        used += cost
    text = render(blocks)
    tokens = count(text)
    while tokens > budget and blocks:  # token merges at the joins: drop the oldest to be sure
        blocks.pop(0)
        text = render(blocks)
        tokens = count(text)
    return LlmPrompt(persona, text, tokens, len(blocks), len(dialogues))


def context_length(loaded: LoadedModel) -> int:
    """Tokens the model attends over: its config's max_position_embeddings."""
    length = getattr(loaded.model.config, "max_position_embeddings", None)
    if not isinstance(length, int) or length <= 0:
        raise AdaptCommandError(f"{loaded.name}: the model config gives no context length")
    return length


def prompt_budget(loaded: LoadedModel, settings: LlmSettings) -> int:
    """Prompt tokens allowed: the context less the answer's budget, capped by the settings."""
    budget = context_length(loaded) - settings.max_new_tokens
    if settings.max_prompt_tokens is not None:
        budget = min(budget, settings.max_prompt_tokens)
    if budget <= 0:
        raise AdaptCommandError(f"{loaded.name}: a context of {context_length(loaded)} tokens "
                                f"leaves no room for a prompt and {settings.max_new_tokens} "
                                "new tokens; lower max_new_tokens")
    return budget


class SchemaMask:
    """A transformers logits processor that lets through only the tokens llguidance's matcher
    allows next, one matcher per row; a row's matcher follows the tokens greedy search picks."""

    def __init__(self, matchers: list[Any], vocab_size: int, prompt_width: int) -> None:
        self.matchers = matchers
        self.vocab_size = vocab_size
        self.prompt_width = prompt_width
        self.bitmask = np.full((len(matchers), (vocab_size + 31) // 32), -1, dtype=np.int32)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch
        from llguidance.numpy import fill_next_token_bitmask

        if input_ids.shape[1] > self.prompt_width:
            for matcher, token in zip(self.matchers, input_ids[:, -1].tolist(), strict=True):
                if not matcher.is_stopped() and not matcher.consume_token(token):
                    raise AdaptCommandError(f"constrained decoding: {matcher.get_error()}")
        for row, matcher in enumerate(self.matchers):
            fill_next_token_bitmask(matcher, self.bitmask, row)
        bits = np.unpackbits(self.bitmask.view(np.uint8), axis=1, bitorder="little")
        allowed = torch.from_numpy(bits[:, : scores.shape[1]].astype(bool)).to(scores.device)
        return scores.masked_fill(~allowed, float("-inf"))


@functools.lru_cache(maxsize=4)
def grammar_tokenizer(tokenizer: PreTrainedTokenizerBase, vocab_size: int,
                      eos_ids: tuple[int, ...]) -> Any:
    """llguidance's view of the tokenizer (about 2 s to build, so kept per tokenizer), with the
    turn terminators as EOS and `vocab_size` = the width of the model's logits."""
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=list(eos_ids))


def grammar_matchers(ll_tokenizer: Any, grammar: str, rows: int) -> list[Any]:
    """One fresh matcher of `grammar` per row."""
    import llguidance

    matchers = [llguidance.LLMatcher(ll_tokenizer, grammar, log_level=0) for _ in range(rows)]
    for matcher in matchers:
        if matcher.is_error():
            raise AdaptCommandError(f"routines grammar: {matcher.get_error()}")
    return matchers


def routines_grammar(max_routines: int) -> str:
    """The llguidance grammar of `routines_json_schema`, compact (no free whitespace)."""
    import llguidance

    return llguidance.LLMatcher.grammar_from_json_schema(
        routines_json_schema(max_routines), defaults={"whitespace_flexible": False})


def complete_routines(text: str) -> str:
    """A schema-valid answer from one the token budget cut: its complete routines, closed.

    The grammar fixes the layout `{"routines":[R,R,...` (compact, no whitespace, no braces in
    any string), so a routine ends where the bracket depth returns to the array's level."""
    if text.endswith("]}"):
        return text
    depth, last_end = 0, None
    for index, char in enumerate(text):
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 2:  # inside {"routines":[ ... ]}
                last_end = index + 1
    head = '{"routines":['
    return (text[:last_end] if last_end else head) + "]}"


def generate_routines(loaded: LoadedModel, prompts: Sequence[str], settings: LlmSettings
                      ) -> tuple[list[str], int]:
    """Greedy, schema-constrained answers in prompt order, and how many the budget cut."""
    import torch
    from transformers import LogitsProcessorList

    from adaptcommand.models.generation import GenerationSettings, decode_reply, generation_config
    from adaptcommand.models.prefix_cache import batch_inputs

    tokenizer = loaded.tokenizer
    stop_ids = list(loaded.end_of_turn_ids)
    grammar = routines_grammar(settings.max_routines)
    vocab = int(loaded.model.config.vocab_size)
    ll_tokenizer = grammar_tokenizer(tokenizer, vocab, tuple(stop_ids))
    config = generation_config(GenerationSettings(max_new_tokens=settings.max_new_tokens),
                               tokenizer.pad_token_id, stop_ids)
    encoded = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    answers, cut = [""] * len(prompts), 0
    for start in range(0, len(prompts), settings.batch_size):
        indices = list(range(start, min(start + settings.batch_size, len(prompts))))
        batch = batch_inputs(tokenizer, [encoded[i] for i in indices], None, None, loaded.device)
        matchers = grammar_matchers(ll_tokenizer, grammar, len(indices))
        mask = SchemaMask(matchers, vocab, batch["input_ids"].shape[1])
        torch.manual_seed(settings.seed)
        with torch.inference_mode():
            output = loaded.model.generate(**batch, generation_config=config,
                                           logits_processor=LogitsProcessorList([mask]))
        new_tokens = output[:, batch["input_ids"].shape[1]:].tolist()
        for index, tokens, matcher in zip(indices, new_tokens, matchers, strict=True):
            text = decode_reply(tokenizer, tokens, stop_ids)
            cut += not matcher.is_accepting()
            answers[index] = complete_routines(text)
    return answers, cut


def parse_answer(persona: str, answer: str) -> list[dict[str, Any]]:
    """The routines of one answer in the dataset's compact form (unset fields absent); the
    grammar guarantees they validate, and a failure here is a bug worth stopping for."""
    try:
        line = RoutinesLine.model_validate(json.loads(answer))
    except ValueError as exc:
        raise AdaptCommandError(f"{persona}: the constrained answer is not schema-valid "
                                f"({exc}): {answer[:200]!r}") from None
    return [routine.model_dump(exclude_none=True) for routine in line.routines]


@dataclass(frozen=True)
class LlmPrediction:
    """Routines per persona plus what the run did, for the CLI and the learning curve."""

    routines: dict[str, list[dict[str, Any]]]
    prompts: dict[str, LlmPrompt]
    answers: dict[str, str]
    cut: int

    def info(self) -> dict[str, Any]:
        """Prompt sizes and sessions kept per persona, for a run's metadata file."""
        return {"answers_cut_by_budget": self.cut,
                "personas": {pid: {"prompt_tokens": p.tokens, "sessions_used": p.sessions_used,
                                   "sessions_given": p.sessions_given}
                             for pid, p in self.prompts.items()}}


def predict_with_model(
    loaded: LoadedModel,
    dialogues: Mapping[str, Sequence[CleanDialogue]],
    settings: LlmSettings,
) -> LlmPrediction:
    """`predict_routines_llm` with a model already loaded (the learning curve reuses one)."""
    budget = prompt_budget(loaded, settings)
    prompts = {pid: history_prompt(loaded.tokenizer, pid, sessions, budget)
               for pid, sessions in dialogues.items()}
    answers, cut = generate_routines(loaded, [p.text for p in prompts.values()], settings)
    by_persona = dict(zip(prompts, answers, strict=True))
    routines = {pid: parse_answer(pid, answer) for pid, answer in by_persona.items()}
    return LlmPrediction(routines, prompts, by_persona, cut)


def predict_routines_llm(
    dialogues: Mapping[str, Sequence[CleanDialogue]],
    *,
    model: str = "embedded",
    settings: LlmSettings | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """persona_id -> routines (compact dicts, schema-valid) written by `model` from each
    persona's sessions (messages and meta only), greedy and schema-constrained."""
    from adaptcommand.models.loading import load_model

    settings = (settings or LlmSettings()).model_copy(update={"model": model})
    loaded = load_model(settings.model, device=settings.device, dtype=settings.dtype,
                        seed=settings.seed)
    return predict_with_model(loaded, dialogues, settings).routines


def as_profiles(prediction: LlmPrediction) -> dict[str, Any]:
    """The answers as `UserProfile`s (support 0: a model cites no sessions), so routines.jsonl,
    profiles.json, `routines score` and `probe --profiles` treat both methods alike."""
    from adaptcommand.routines.profile import MinedRoutine, UserProfile

    return {pid: UserProfile(
        persona_id=pid, sessions_used=prediction.prompts[pid].sessions_used,
        routines=[MinedRoutine(triggers=r.get("triggers", {}), actions=r.get("actions", {}),
                               support=0, sessions=[]) for r in routines])
        for pid, routines in prediction.routines.items()}


def predict_data(data: str | Path, out: str | Path, *, split: SplitName = "train",
                 max_sessions: int | None = None, settings: LlmSettings | None = None
                 ) -> dict[str, Any]:
    """`routines mine --method llm`: the same outputs as the miner's `mine_data`
    (routines.jsonl, profiles.json, mining.json with the prompt sizes per persona)."""
    from adaptcommand.data.io import load_split
    from adaptcommand.models.loading import load_model
    from adaptcommand.routines.run import counts, write_outputs

    settings = settings or LlmSettings()
    started = time.perf_counter()
    dialogues = {pid: sessions[-max_sessions:] if max_sessions else sessions
                 for pid, sessions in load_split(data, split).items()}
    loaded = load_model(settings.model, device=settings.device, dtype=settings.dtype,
                        seed=settings.seed)
    prediction = predict_with_model(loaded, dialogues, settings)
    profiles = as_profiles(prediction)
    summary = {"method": "llm", "data": str(Path(data).resolve()), "split": split,
               "max_sessions": max_sessions, "settings": settings.model_dump(),
               "seconds": round(time.perf_counter() - started, 3), **counts(profiles),
               "llm": prediction.info()}
    return write_outputs(out, profiles, summary)
