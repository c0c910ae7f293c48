"""Real streaming: a reply's text leaves the worker thread as each token is decoded.

The worker thread generates one streamed request at a time (`stream_generate`); a streamer turns
each new token into the text it adds (held back while a multi-byte character is incomplete) and
hands it to the request's `StreamChannel`, which carries it to the event loop. A client that goes
away sets the channel's `cancelled` flag and generation stops at the next token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from adaptcommand.models.generation import GenerationSettings, generation_config

_END = object()


class StreamChannel:
    """From the worker thread (`start`, `put`, `close`) to one request's coroutine (iterate)."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self.started = asyncio.Event()  # set once the adapter is loaded and decoding begins
        self.cancelled = threading.Event()  # the client went away: stop generating

    def start(self) -> None:
        self._loop.call_soon_threadsafe(self.started.set)

    def put(self, text: str) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, text)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, _END)

    async def pieces(self) -> AsyncIterator[str]:
        while (item := await self._queue.get()) is not _END:
            yield str(item)


class _Trimmed:
    """Forwards text with leading and trailing whitespace of the whole reply held back, so the
    pieces join to exactly the stripped reply the non-streaming response carries."""

    def __init__(self, channel: StreamChannel) -> None:
        self.channel = channel
        self.pending = ""
        self.begun = False

    def add(self, text: str) -> None:
        self.pending += text
        if not self.begun:
            self.pending = self.pending.lstrip()
            self.begun = bool(self.pending)
        body = self.pending.rstrip()
        if body:
            self.channel.put(body)
            self.pending = self.pending[len(body):]


class PieceStreamer(BaseStreamer):
    """Decodes the reply so far after every token and forwards what it adds; text after a stop
    token is never sent."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_ids: Sequence[int],
                 out: _Trimmed) -> None:
        self.tokenizer, self.stop_ids, self.out = tokenizer, set(stop_ids), out
        self.tokens: list[int] = []
        self.prompt_seen = False
        self.stopped = False
        self.sent = 0

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() hands over the prompt first
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.stopped = self.stopped or token in self.stop_ids
            if not self.stopped:
                self.tokens.append(token)
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd") and not final:
            return  # an incomplete multi-byte character: wait for its next token
        if len(text) > self.sent:
            self.out.add(text[self.sent:])
            self.sent = len(text)


class _Cancelled(StoppingCriteria):
    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> bool:
        return self.flag.is_set()


def stream_generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    settings: GenerationSettings,
    *,
    adapter_name: str | None,
    stop_ids: Sequence[int],
    channel: StreamChannel,
) -> tuple[list[int], int]:
    """(reply tokens before the stop token, prompt tokens), streaming the text to `channel`.
    One prompt; `adapter_name` is the PEFT adapter of a PeftModel (None for a bare model)."""
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = ids.to(model.device)
    streamer = PieceStreamer(tokenizer, stop_ids, _Trimmed(channel))
    extra = {"adapter_names": [adapter_name]} if adapter_name is not None else {}
    torch.manual_seed(settings.seed)
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                       generation_config=generation_config(settings, tokenizer.pad_token_id,
                                                           list(stop_ids)),
                       streamer=streamer,
                       stopping_criteria=StoppingCriteriaList([_Cancelled(channel.cancelled)]),
                       **extra)
    return streamer.tokens, ids.shape[1]
