"""One batch of requests through the model: load the adapters it needs, then one mixed-adapter
`generate` (or, for a streamed request, a batch of one whose tokens leave as they are decoded).
Runs in the batcher's worker thread, never two at a time."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from peft import PeftModel

from adaptcommand.models.adapters import BASE as PEFT_BASE  # "no adapter" in a mixed batch
from adaptcommand.models.generation import GenerationSettings, generate
from adaptcommand.models.loading import LoadedModel
from adaptcommand.serving.adapter_cache import AdapterCache, Selection
from adaptcommand.serving.errors import ContextLengthError
from adaptcommand.serving.streaming import StreamChannel, stream_generate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One request's generation: its rendered prompt, adapter and decoding settings."""

    prompt: str
    selection: Selection
    settings: GenerationSettings
    stream: StreamChannel | None = None  # set: generated alone, text sent as it is decoded


@dataclass(frozen=True)
class Reply:
    """A generated reply and its token counts. `generate` returns text only, so the reply is
    re-encoded (capped at max_new_tokens, which generation cannot exceed): a close estimate."""

    text: str
    prompt_tokens: int
    completion_tokens: int


class Engine:
    """The loaded base model plus the adapter cache; `run` is the batcher's work function."""

    def __init__(self, loaded: LoadedModel, cache_size: int,
                 context_tokens: int | None = None) -> None:
        self.loaded = loaded
        self.cache = AdapterCache(loaded.model, cache_size)
        self.context_tokens = context_tokens or model_context(loaded)

    def run(self, jobs: list[Job]) -> list[Reply | Exception]:
        """A reply or the error for each job. The jobs share `settings` (the batcher groups them
        so); a job whose adapter fails to load, or whose prompt does not fit the context, gets
        that error and the others still run. All tokenizer use happens here, in one thread:
        fast tokenizers fail when shared across threads ("Already borrowed")."""
        too_long = {i: error for i, job in enumerate(jobs) if (error := self._check_fits(job))}
        fitting = [job for i, job in enumerate(jobs) if i not in too_long]
        failed = self._activate({job.selection.adapter: job.selection.path for job in fitting})
        results: list[Reply | Exception] = [
            too_long.get(i) or failed.get(job.selection.adapter, RuntimeError("not run"))
            for i, job in enumerate(jobs)
        ]
        runnable = [i for i, job in enumerate(jobs)
                    if i not in too_long and job.selection.adapter not in failed]
        if not runnable:
            return results
        if jobs[runnable[0]].stream is not None:  # the batcher runs streamed jobs alone
            results[runnable[0]] = self._stream(jobs[runnable[0]])
            return results
        settings = jobs[runnable[0]].settings.model_copy(update={"batch_size": len(runnable)})
        names = [_peft_name(jobs[i].selection) for i in runnable]
        replies = generate(
            self.cache.model,
            self.loaded.tokenizer,
            [jobs[i].prompt for i in runnable],
            settings,
            # A PeftModel applies its active adapter unless told otherwise, so base rows must be
            # named; a bare base model takes no adapter names at all.
            adapter_names=names if isinstance(self.cache.model, PeftModel) else None,
            end_of_turn_ids=self.loaded.end_of_turn_ids,
        )
        for i, text in zip(runnable, replies, strict=True):
            results[i] = Reply(text, self._count(jobs[i].prompt),
                               min(self._count(text), settings.max_new_tokens))
        return results

    def _count(self, text: str) -> int:
        return len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _check_fits(self, job: Job) -> ContextLengthError | None:
        """Counted in tokens: prompt plus max_tokens must fit the model's context."""
        prompt = self._count(job.prompt)
        wanted = prompt + job.settings.max_new_tokens
        if wanted <= self.context_tokens:
            return None
        return ContextLengthError(
            f"this model's context is {self.context_tokens} tokens; the prompt is {prompt} "
            f"tokens and max_tokens {job.settings.max_new_tokens} ({wanted} in all): shorten "
            "the messages or lower max_tokens")

    def _stream(self, job: Job) -> Reply:
        assert job.stream is not None
        job.stream.start()
        try:
            tokens, prompt_tokens = stream_generate(
                self.cache.model, self.loaded.tokenizer, job.prompt, job.settings,
                adapter_name=(_peft_name(job.selection)
                              if isinstance(self.cache.model, PeftModel) else None),
                stop_ids=self.loaded.end_of_turn_ids, channel=job.stream)
        finally:
            job.stream.close()
        text = self.loaded.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return Reply(text, prompt_tokens, len(tokens))

    def _activate(self, adapters: dict[str, Path | None]) -> dict[str, Exception]:
        """Load every adapter of the batch; failures by adapter name."""
        keep = frozenset(name for name, path in adapters.items() if path is not None)
        failed: dict[str, Exception] = {}
        for name, path in adapters.items():
            if path is None:
                continue
            try:
                self.cache.activate(name, path, keep)
            except Exception as exc:  # a bad adapter must not take the batch down with it
                log.exception("loading adapter %s failed", name)
                failed[name] = exc
        return failed


def _peft_name(selection: Selection) -> str:
    return selection.adapter if selection.path is not None else PEFT_BASE


def model_context(loaded: LoadedModel) -> int:
    """The most tokens (prompt + reply) the model takes: its position embeddings."""
    config = loaded.model.config.get_text_config()
    return int(getattr(config, "max_position_embeddings", None) or 2048)
