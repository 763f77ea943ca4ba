"""Async executor: `async def` tasks on one asyncio loop owned by the service.

Many run at once on one thread; the queue's concurrency caps how many. A timeout or a
cancel cancels the task.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ..attempt import run_attempt_async
from ..context import Context
from ..model import Claim
from ..registry import Registry
from . import Done


class AsyncExecutor:
    def __init__(self, registry: Registry, done: Done) -> None:
        self._registry = registry
        self._done = done
        self._loop = asyncio.new_event_loop()
        self._tasks: dict[int, asyncio.Task[Any]] = {}
        self._thread = threading.Thread(target=self._run, name="jobrun-asyncio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def submit(self, claim: Claim, ctx: Context) -> None:
        self._loop.call_soon_threadsafe(self._start, claim, ctx)

    def _start(self, claim: Claim, ctx: Context) -> None:
        task = self._loop.create_task(self._one(claim, ctx))
        self._tasks[claim.id] = task

    async def _one(self, claim: Claim, ctx: Context) -> None:
        try:
            outcome = await run_attempt_async(claim, self._registry, ctx)
        finally:
            self._tasks.pop(claim.id, None)
        self._done(claim, outcome)

    def cancel(self, job_id: int) -> None:
        def _cancel() -> None:
            task = self._tasks.get(job_id)
            if task is not None:
                task.cancel()
        self._loop.call_soon_threadsafe(_cancel)

    def resize(self, workers: int) -> None:
        """The service's cap bounds concurrency; the loop needs no resizing."""

    def shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
