"""Asyncio micro-batcher: concurrent requests wait a few milliseconds for company, then run as
one mixed-adapter `generate` in a worker thread, so users with different adapters share a
forward pass instead of queueing behind each other.

Requests that arrive while a batch generates are queued and form the next batch. A batch holds
requests with identical decoding settings (one `generate` call takes one settings object) and at
most as many distinct adapters as the cache holds (they must all be loaded at once). A streamed
request is a batch of its own (its tokens are sent as they are decoded, one row at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from adaptcommand.serving.batch_runner import Job, Reply

log = logging.getLogger(__name__)
Pending = tuple[Job, asyncio.Future[Reply]]
RunBatch = Callable[[list[Job]], list[Reply | Exception]]


def take_batch(
    pending: list[Pending], max_batch: int, max_adapters: int
) -> tuple[list[Pending], list[Pending]]:
    """(batch, rest): the oldest request plus every later one compatible with it, in order."""
    first = pending[0][0]
    if first.stream is not None:
        return pending[:1], pending[1:]
    batch: list[Pending] = []
    rest: list[Pending] = []
    adapters: set[str] = set()
    for item in pending:
        job = item[0]
        fits_adapters = job.selection.adapter in adapters or len(adapters) < max_adapters
        if (len(batch) < max_batch and job.settings == first.settings and fits_adapters
                and job.stream is None):
            batch.append(item)
            adapters.add(job.selection.adapter)
        else:
            rest.append(item)
    return batch, rest


class MicroBatcher:
    """Collects `submit`ted jobs into batches for `run_batch` (called in one worker thread)."""

    def __init__(
        self, run_batch: RunBatch, *, max_batch: int, max_adapters: int, wait_s: float
    ) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_adapters = max_adapters
        self.wait_s = wait_s
        self._queue: asyncio.Queue[Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches_run = 0  # running totals for /healthz: mean batch size = jobs / batches
        self.jobs_run = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def submit(self, job: Job) -> Reply:
        """The reply to `job`; raises the job's own error."""
        if self._queue is None or self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))
        return await future

    async def _loop(self) -> None:
        assert self._queue is not None
        pending: list[Pending] = []
        while True:
            if not pending:
                pending.append(await self._queue.get())
            await self._gather(pending)
            batch, pending = take_batch(pending, self.max_batch, self.max_adapters)
            live = [item for item in batch if not item[1].done()]  # a cancelled client is done
            if live:
                await self._run(live)

    async def _gather(self, pending: list[Pending]) -> None:
        """Move queued jobs into `pending`, waiting up to `wait_s` while the batch is not full."""
        assert self._queue is not None
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while len(pending) < self.max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                if remaining > 0:
                    pending.append(await asyncio.wait_for(self._queue.get(), remaining))
                else:
                    pending.append(self._queue.get_nowait())
            except (TimeoutError, asyncio.QueueEmpty):
                return

    async def _run(self, batch: list[Pending]) -> None:
        jobs = [job for job, _ in batch]
        self.batches_run += 1
        self.jobs_run += len(jobs)
        try:
            results: list[Reply | Exception] = await asyncio.to_thread(self._run_batch, jobs)
        except Exception as exc:  # the whole batch failed; the loop must keep serving
            log.exception("batch of %d failed", len(jobs))
            results = [exc] * len(jobs)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
