"""Thread executor: worker threads of the service, one attempt at a time each."""

from __future__ import annotations

from ..attempt import run_attempt
from ..registry import Registry
from . import Done
from .slots import Slots


class ThreadExecutor(Slots):
    def __init__(self, name: str, workers: int, registry: Registry, done: Done) -> None:
        self._registry = registry
        super().__init__(name, workers, done)

    def _slot(self) -> None:
        get, registry, done = self._q.get, self._registry, self._done
        while True:
            item = get()
            if item is None:
                return
            claim, ctx = item
            done(claim, run_attempt(claim, registry, ctx, log_it=False))
