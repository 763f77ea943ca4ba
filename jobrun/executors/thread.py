"""Thread executor: a fixed set of worker threads per queue, fed by a SimpleQueue."""

from __future__ import annotations

import queue
import threading

from ..context import Context
from ..model import Claim
from ..registry import Registry
from ..worker import run_attempt
from . import Done

_STOP = None


class ThreadExecutor:
    def __init__(self, name: str, workers: int, registry: Registry, done: Done) -> None:
        self.name = name
        self._registry = registry
        self._done = done
        self._q: queue.SimpleQueue[tuple[Claim, Context] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.resize(workers)

    def _work(self) -> None:
        get, registry, done = self._q.get, self._registry, self._done
        while True:
            item = get()
            if item is None:
                return
            claim, ctx = item
            done(claim, run_attempt(claim, registry, ctx))

    def resize(self, workers: int) -> None:
        """Grow to `workers` threads. Never shrinks: the service's cap decides how many run,
        and an idle thread costs nothing."""
        while len(self._threads) < workers:
            t = threading.Thread(target=self._work, daemon=True,
                                 name=f"jobrun-{self.name}-{len(self._threads)}")
            t.start()
            self._threads.append(t)

    def submit(self, claim: Claim, ctx: Context) -> None:
        self._q.put((claim, ctx))

    def shutdown(self) -> None:
        for _ in self._threads:
            self._q.put(_STOP)
