"""Async executor: `async def` tasks on one asyncio loop owned by the service.

Many run at once on one thread; the queue's concurrency caps how many (a semaphore per
queue: held jobs, claimed ahead, wait on it and begin once they pass). A timeout or a cancel
cancels the task.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ..attempt import run_attempt_async
from ..context import Context
from ..model import Claim, Outcome
from ..registry import Registry
from . import Began, Done, never_began
from .slots import unstarted


class AsyncExecutor:
    def __init__(self, registry: Registry, done: Done, began: Began = never_began,
                 limit: Callable[[str], int] = lambda queue: 1 << 30) -> None:
        self._registry = registry
        self._done = done
        self._began = began
        self._limit = limit
        self._gates: dict[str, asyncio.Semaphore] = {}  # per queue, made on its loop
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
        gate = self._gates.get(claim.queue)
        if gate is None:
            gate = self._gates[claim.queue] = asyncio.Semaphore(self._limit(claim.queue))
        try:
            async with gate:
                outcome = await self._attempt(claim, ctx)
        except asyncio.CancelledError:  # cancelled while it waited at the gate
            outcome = unstarted(claim, ctx)
        finally:
            self._tasks.pop(claim.id, None)
        self._done(claim, outcome)

    async def _attempt(self, claim: Claim, ctx: Context) -> Outcome:
        if claim.held:
            if ctx.cancelled or ctx.withdrawn:  # while it waited: it never begins
                return unstarted(claim, ctx)
            self._began(claim.token)
        return await run_attempt_async(claim, self._registry, ctx)

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
