"""Continuous batching with prompt-prefix reuse, for greedy decoding.

Two wastes of static batches, both large on evaluation turns, are avoided (what vLLM calls
continuous batching and automatic prefix caching, SGLang radix attention):

- A static batch decodes until its longest reply ends, and replies run from a few tokens to
  `max_new_tokens`. Here a row leaves as soon as its reply ends and the next prompt is
  prefilled into the free slot, so every decode step works on up to `batch_size` live rows.
- Consecutive turns of a session share their prompt: turn k+1's context is turn k's plus one
  exchange. A prompt that starts with another prompt of the call (same adapter) is prefilled
  right after it, from a copy of its key/values: only the new tail is computed, and the
  parent's key/values are held only until its children have joined (_Schedule). Prompts without such
  a parent start from the shared system-prompt cache (models.prefix_cache) when there is one.

Rows of different ages share one preallocated KV cache (_Batch), right-aligned: every live
row's tokens end at the same column, so a decode step writes all rows' new key/values into one
column in place, and a joining prompt's key/values are copied into a free slot; columns left of
a row's tokens are masked. Position ids are tracked per row, not derived from columns, so every
token keeps the position it has when its prompt is generated alone, and greedy replies equal
`generate`'s one prompt at a time (tested). Layers must be full-attention: a sliding window
counts columns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from adaptcommand.models.prefix_cache import PrefixCache, uses_prompt_learning

RESERVED_COLUMNS = 64
"""Free columns a batch's cache is (re)allocated with for the coming decode steps."""


@dataclass(frozen=True)
class _Span:
    """Key/values of a prompt's first `length` tokens, one row per layer: what a prompt that
    starts with those tokens reuses instead of computing them."""

    length: int
    layers: list[tuple[Tensor, Tensor]]  # per layer (keys, values): (1, heads, length, dim)

    def cut(self, length: int) -> _Span:
        return _Span(length, [(k[:, :, :length], v[:, :, :length]) for k, v in self.layers])


@dataclass(frozen=True)
class _Prefilled:
    """Freshly prefilled prompts: their cache (row r's real columns where `mask[r]` is 1) and
    each one's first reply token."""

    cache: DynamicCache
    mask: Tensor
    first: list[int]

    def span(self, row: int) -> _Span:
        """Row `row`'s prompt key/values: what its slot and its children start from."""
        columns = self.mask[row].bool()
        return _Span(int(columns.sum()), [(layer.keys[row:row + 1][:, :, columns],
                                           layer.values[row:row + 1][:, :, columns])
                                          for layer in self.cache.layers])


def supports_continuous_batching(model: PreTrainedModel) -> bool:
    """Plain full-attention decoders: no prompt-learning adapter (it owns the cache) and no
    sliding-window layer (its mask counts columns, which padding shifts here)."""
    if uses_prompt_learning(model):
        return False
    config = model.config.get_text_config()
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return all(kind == "full_attention" for kind in layer_types)
    return getattr(config, "sliding_window", None) is None or not getattr(
        config, "use_sliding_window", True)


def _next_tokens(model: PreTrainedModel, input_ids: Tensor, rows_mask: Tensor,
                 position_ids: Tensor, cache: Cache, names: list[str] | None) -> Tensor:
    """Greedy next token of every row; the LM head runs on the last position only."""
    extra = {"adapter_names": names} if names else {}
    logits = model(input_ids=input_ids, attention_mask=rows_mask, position_ids=position_ids,
                   cache=cache, use_cache=True, logits_to_keep=1, **extra).logits
    return logits[:, -1].argmax(dim=-1)


def _stack(spans: list[_Span], width: int) -> DynamicCache:
    """One cache holding every row's span, left-padded with zero columns to `width`."""
    if width == 0:
        return DynamicCache()
    return DynamicCache([
        tuple(torch.cat([F.pad(span.layers[layer][part], (0, 0, width - span.length, 0))
                         for span in spans])
              for part in (0, 1))
        for layer in range(len(spans[0].layers))])


def _prefill(model: PreTrainedModel, prompts: list[Sequence[int]], spans: list[_Span | None],
             names: list[str] | None, pad_id: int) -> _Prefilled:
    """Each prompt's span copied into a cache, the rest of the prompt computed on top."""
    device = model.device
    known = next((span for span in spans if span is not None), None)
    empty = known.cut(0) if known else None
    filled = [span or empty for span in spans]
    starts = [span.length if span else 0 for span in filled]
    tails = [prompt[start:] for prompt, start in zip(prompts, starts, strict=True)]
    width, tail_width = max(starts), max(len(tail) for tail in tails)
    input_ids = torch.full((len(prompts), tail_width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), width + tail_width, dtype=torch.long)
    for row, (start, tail) in enumerate(zip(starts, tails, strict=True)):
        input_ids[row, tail_width - len(tail):] = torch.tensor(tail)
        mask[row, width - start:width] = 1
        mask[row, width + tail_width - len(tail):] = 1
    mask = mask.to(device)
    first_positions = torch.tensor(starts, device=device)[:, None]
    positions = first_positions + (mask[:, width:].cumsum(dim=-1) - 1).clamp(min=0)
    cache = _stack(filled, width) if known else DynamicCache()  # type: ignore[arg-type]
    first = _next_tokens(model, input_ids.to(device), mask, positions, cache, names)
    return _Prefilled(cache, mask, first.tolist())


class _SlotLayer(DynamicLayer):
    """One layer of a _Batch's cache: the model's `update` writes the step's key/values into
    the batch's next column in place and attends over the columns in use."""

    def __init__(self, batch: _Batch) -> None:
        super().__init__()
        self.batch, self.is_initialized = batch, True
        self.key_buffer = self.value_buffer = torch.empty(0)

    def update(self, key_states: Tensor, value_states: Tensor, *args: object,
               **kwargs: object) -> tuple[Tensor, Tensor]:
        start, end = self.batch.start, self.batch.end
        self.key_buffer[:, :, end:end + 1] = key_states
        self.value_buffer[:, :, end:end + 1] = value_states
        self.keys = self.key_buffer[:, :, start:end + 1]
        self.values = self.value_buffer[:, :, start:end + 1]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.batch.end - self.batch.start


class _Batch:
    """Up to `slots` rows decoding together from one preallocated cache.

    Rows are right-aligned: every live row's tokens end at column `end` - 1, so a decode step
    writes each row's new key/values into column `end`; left of a row's tokens its columns are
    masked. Attention sees columns [start, end], `start` being the first one a live row uses. A
    row that ends frees its slot; a joining prompt's key/values are copied, right-aligned, into
    a free slot. Free slots still decode (one masked-off column each) until `shrink` drops them.
    """

    def __init__(self, slots: int, layers: int, name: str | None) -> None:
        self.prompts: list[int | None] = [None] * slots
        self.names = [name] * slots  # a free slot keeps a valid adapter name
        self.positions = [0] * slots
        self.last = [0] * slots
        self.layers = [_SlotLayer(self) for _ in range(layers)]
        self.cache = Cache(layers=self.layers)
        self.mask = torch.zeros(slots, 0, dtype=torch.long)
        self.start = self.end = 0

    def live(self) -> list[int]:
        return [slot for slot, prompt in enumerate(self.prompts) if prompt is not None]

    def free(self) -> list[int]:
        return [slot for slot, prompt in enumerate(self.prompts) if prompt is None]

    def _relayout(self, keys: Tensor, needed: int) -> None:
        """Fresh buffers (shaped and typed after `keys`) holding columns [start, end) so that
        `end` >= needed, with room to decode."""
        width = self.end - self.start
        end = max(width, needed)
        capacity = end + max(RESERVED_COLUMNS, width)
        mask = self.mask.new_zeros(len(self.prompts), capacity, device=keys.device)
        mask[:, end - width:end] = self.mask[:, self.start:self.end]
        self.mask = mask
        for layer in self.layers:
            for name in ("key_buffer", "value_buffer"):
                old = getattr(layer, name)
                new = keys.new_zeros(len(self.prompts), keys.shape[1], capacity, keys.shape[3])
                if width:
                    new[:, :, end - width:end] = old[:, :, self.start:self.end]
                setattr(layer, name, new)
        self.start, self.end = end - width, end

    def place(self, slot: int, prompt: int, name: str | None, span: _Span, first: int) -> None:
        """Prompt `prompt` (key/values `span`, first reply token `first`) into a free slot."""
        if span.length > self.end or not self.mask.shape[1]:
            self._relayout(span.layers[0][0], span.length)
        columns = slice(self.end - span.length, self.end)
        for layer, (keys, values) in zip(self.layers, span.layers, strict=True):
            layer.key_buffer[slot, :, columns] = keys[0]
            layer.value_buffer[slot, :, columns] = values[0]
        self.mask[slot] = 0
        self.mask[slot, columns] = 1
        self.start = min(self.start, columns.start) if self.live() else columns.start
        self.prompts[slot], self.names[slot] = prompt, name
        self.positions[slot], self.last[slot] = span.length, first

    def decode(self, model: PreTrainedModel, with_names: bool) -> list[int]:
        """Feed every slot's newest token; the next token of each."""
        if self.end == self.mask.shape[1]:
            self._relayout(self.layers[0].key_buffer, self.end)
        self.mask[:, self.end] = 1  # a free slot attends to its own column only
        device = self.mask.device
        tokens = _next_tokens(model, torch.tensor(self.last, device=device)[:, None],
                              self.mask[:, self.start:self.end + 1],
                              torch.tensor(self.positions, device=device)[:, None], self.cache,
                              self.names if with_names else None)  # type: ignore[arg-type]
        self.end += 1
        self.positions = [position + 1 for position in self.positions]
        self.last = tokens.tolist()
        return self.last

    def leave(self, slot: int) -> None:
        """Free a slot; columns no live row uses any more drop out of attention."""
        self.prompts[slot] = None
        self.mask[slot] = 0
        live = self.live()
        used = self.mask[live, self.start:self.end].any(dim=0) if live else None
        self.start = (self.start + int(used.int().argmax()) if used is not None and used.any()
                      else self.end)

    def shrink(self) -> None:
        """Drop free slots (once no prompt is left to join them), when at most half are live."""
        live = self.live()
        if not live or len(live) > len(self.prompts) // 2:
            return
        index = torch.tensor(live, device=self.mask.device)
        for layer in self.layers:
            layer.key_buffer = layer.key_buffer[index]
            layer.value_buffer = layer.value_buffer[index]
        self.mask = self.mask[index]
        for field in ("prompts", "names", "positions", "last"):
            values = getattr(self, field)
            setattr(self, field, [values[slot] for slot in live])


def prompt_parents(encoded: Sequence[Sequence[int]],
                   adapter_names: Sequence[str] | None) -> list[int | None]:
    """For each prompt, a longest other prompt of the same adapter that it starts with, or None
    (equal prompts chain one after another). In lexicographic order a prompt's prefixes come
    before it, so one pass with the stack of the current chain of prefixes finds them all."""
    names = adapter_names or [""] * len(encoded)

    def extends(child: int, parent: int) -> bool:
        head = encoded[parent]
        return (names[child] == names[parent] and len(head) <= len(encoded[child])
                and list(encoded[child][:len(head)]) == list(head))

    parents: list[int | None] = [None] * len(encoded)
    chain: list[int] = []
    for index in sorted(range(len(encoded)), key=lambda i: (names[i], list(encoded[i]), i)):
        while chain and not extends(index, chain[-1]):
            chain.pop()
        parents[index] = chain[-1] if chain else None
        chain.append(index)
    return parents


class _Schedule:
    """Which prompts join next, and which prefilled key/values must stay alive for them.

    Roots (prompts without a parent) join longest first. A prompt's children go to the front of
    the queue as soon as it is prefilled, so they join at the next free slots and its key/values
    are dropped once its last child has joined: at most about a batch of parents is held at a
    time, however many sessions a call has, instead of every root until all roots have joined.
    """

    def __init__(self, parents: list[int | None], lengths: list[int]) -> None:
        self.parents = parents
        self.children: dict[int, list[int]] = {}
        for child, parent in enumerate(parents):
            if parent is not None:
                self.children.setdefault(parent, []).append(child)
        self.waiting = {parent: len(kids) for parent, kids in self.children.items()}
        self.spans: dict[int, _Span] = {}
        roots = [i for i, parent in enumerate(parents) if parent is None]
        self.ready = deque(sorted(roots, key=lambda i: -lengths[i]))

    def take(self, count: int) -> list[int]:
        """The next `count` (or fewer) prompts to join."""
        return [self.ready.popleft() for _ in range(min(count, len(self.ready)))]

    def joined(self, indices: list[int], spans: list[_Span]) -> None:
        """Prompts `indices` were prefilled into `spans`: their children may join next, and a
        parent no pending child needs is dropped."""
        queued = []
        for index, span in zip(indices, spans, strict=True):
            if index in self.children:
                self.spans[index] = span
                queued.extend(self.children[index])
            parent = self.parents[index]
            if parent is not None:
                self.waiting[parent] -= 1
                if not self.waiting[parent]:
                    del self.spans[parent]
        self.ready.extendleft(reversed(queued))


def greedy_continuous(model: PreTrainedModel, encoded: list[list[int]],
                      adapter_names: list[str] | None, *, batch_size: int, max_new_tokens: int,
                      stop_ids: Sequence[int], pad_id: int, prefix: PrefixCache | None,
                      on_done: Callable[[int, list[int]], None] | None = None
                      ) -> list[list[int]]:
    """Greedy reply tokens of every prompt (up to and without its stop token), prompt order.

    `adapter_names[i]` routes prompt i through that PEFT LoRA adapter (eval mode). Prompts
    join in `_Schedule`'s order (a prompt's children right after it). `on_done(i, tokens)` is
    called as soon as prompt i's reply has ended, so callers can stream results.
    """
    stops = set(stop_ids)
    parents = prompt_parents(encoded, adapter_names)
    schedule = _Schedule(parents, [len(prompt) for prompt in encoded])
    replies: list[list[int]] = [[] for _ in encoded]

    def span_for(index: int) -> _Span | None:
        parent = parents[index]
        if parent is not None:
            span: _Span | None = schedule.spans[parent]
        elif prefix is not None:
            row = prefix.rows[adapter_names[index] if adapter_names else None]
            span = _Span(len(prefix.ids), [(layer.keys[row:row + 1], layer.values[row:row + 1])
                                           for layer in prefix.cache.layers])
        else:
            return None
        # At least the prompt's last token must be fed, for the first reply token's logits.
        return span.cut(len(encoded[index]) - 1) if span.length >= len(encoded[index]) else span

    def join(indices: list[int]) -> tuple[list[_Span], list[int]]:
        """Prefill prompts; each one's key/values and first reply token."""
        names = [adapter_names[i] for i in indices] if adapter_names else None
        prefilled = _prefill(model, [encoded[i] for i in indices],
                             [span_for(i) for i in indices], names, pad_id)
        joined = [prefilled.span(row) for row in range(len(indices))]
        schedule.joined(indices, joined)
        return joined, prefilled.first

    def ended(prompt: int, token: int) -> bool:
        """Record a new token of a reply; whether that reply is over."""
        if token not in stops:
            replies[prompt].append(token)
        over = token in stops or len(replies[prompt]) >= max_new_tokens
        if over and on_done is not None:
            on_done(prompt, replies[prompt])
        return over

    text_config = model.config.get_text_config()
    batch = _Batch(min(batch_size, len(encoded)), text_config.num_hidden_layers,
                   adapter_names[0] if adapter_names else None)
    with torch.inference_mode():
        while schedule.ready or batch.live():
            free = batch.free()
            if schedule.ready and free:
                joining = schedule.take(len(free))
                for index, span, first in zip(joining, *join(joining), strict=True):
                    if not ended(index, first):
                        batch.place(free.pop(0), index,
                                    adapter_names[index] if adapter_names else None, span, first)
            if not schedule.ready:
                batch.shrink()
            live = batch.live()
            if live:
                tokens = batch.decode(model, with_names=adapter_names is not None)
                for slot in live:
                    if ended(batch.prompts[slot], tokens[slot]):  # type: ignore[arg-type]
                        batch.leave(slot)
    return replies
