"""The micro-batcher: what goes into one batch, and errors that stay with their request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adaptcommand.models.generation import GenerationSettings
from adaptcommand.serving.adapter_cache import Selection
from adaptcommand.serving.batch_runner import Job
from adaptcommand.serving.batcher import MicroBatcher, take_batch

GREEDY = GenerationSettings(max_new_tokens=8)
LONGER = GenerationSettings(max_new_tokens=16)


def job(prompt: str, adapter: str = "base", settings: GenerationSettings = GREEDY) -> Job:
    path = None if adapter == "base" else Path("/adapters") / adapter
    return Job(prompt, Selection(adapter, path), settings)


def pending(*jobs: Job) -> list:
    return [(j, None) for j in jobs]


def prompts(items: list) -> list[str]:
    return [j.prompt for j, _ in items]


def test_batch_takes_compatible_requests_in_arrival_order():
    queue = pending(job("a"), job("b", settings=LONGER), job("c", "u1"), job("d", "u2"))
    batch, rest = take_batch(queue, max_batch=8, max_adapters=8)
    assert prompts(batch) == ["a", "c", "d"]
    assert prompts(rest) == ["b"]


def test_batch_respects_size_and_distinct_adapter_limits():
    queue = pending(job("a", "u1"), job("b", "u2"), job("c", "u1"), job("d", "u3"), job("e"))
    batch, rest = take_batch(queue, max_batch=8, max_adapters=2)
    assert prompts(batch) == ["a", "b", "c"]  # u3 and base would be a third and fourth adapter
    assert prompts(rest) == ["d", "e"]
    batch, rest = take_batch(queue, max_batch=2, max_adapters=8)
    assert (prompts(batch), prompts(rest)) == (["a", "b"], ["c", "d", "e"])


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_submissions_form_one_batch_and_get_their_own_replies():
    seen: list[list[str]] = []

    def echo(jobs: list[Job]) -> list[str | Exception]:
        seen.append([j.prompt for j in jobs])
        return [f"{j.prompt}!" for j in jobs]

    async def scenario():
        batcher = MicroBatcher(echo, max_batch=3, max_adapters=8, wait_s=5)
        await batcher.start()
        replies = await asyncio.gather(*(batcher.submit(job(p, f"u{i}"))
                                         for i, p in enumerate("xyz")))
        await batcher.stop()
        return replies

    assert run(scenario()) == ["x!", "y!", "z!"]
    assert seen == [["x", "y", "z"]]


def test_errors_reach_only_their_requests_and_the_batcher_keeps_running():
    def flaky(jobs: list[Job]) -> list[str | Exception]:
        if any(j.prompt == "crash" for j in jobs):
            raise RuntimeError("whole batch failed")
        return [ValueError("bad adapter") if j.prompt == "bad" else j.prompt for j in jobs]

    async def scenario():
        batcher = MicroBatcher(flaky, max_batch=8, max_adapters=8, wait_s=0.1)
        await batcher.start()
        mixed = await asyncio.gather(batcher.submit(job("ok")), batcher.submit(job("bad")),
                                     return_exceptions=True)
        crashed = await asyncio.gather(batcher.submit(job("crash")), return_exceptions=True)
        after = await batcher.submit(job("fine"))
        await batcher.stop()
        return mixed, crashed, after

    mixed, crashed, after = run(scenario())
    assert mixed[0] == "ok" and isinstance(mixed[1], ValueError)
    assert isinstance(crashed[0], RuntimeError)
    assert after == "fine"


def test_submit_before_start_is_an_error():
    batcher = MicroBatcher(lambda jobs: [], max_batch=1, max_adapters=1, wait_s=0)
    with pytest.raises(RuntimeError, match="not running"):
        run(batcher.submit(job("x")))
