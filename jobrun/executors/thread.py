"""Thread executor: worker threads of the service, one attempt at a time each."""

from __future__ import annotations

from ..attempt import run_attempt
from ..registry import Registry
from . import Began, Done, never_began
from .slots import Slots


class ThreadExecutor(Slots):
    def __init__(self, name: str, workers: int, registry: Registry, done: Done,
                 began: Began = never_began) -> None:
        self._registry = registry
        super().__init__(name, workers, done, began)

    def _slot(self) -> None:
        get, registry, done, begin = self._q.get, self._registry, self._done, self._begin
        while True:
            item = get()
            if item is None:
                return
            claim, ctx = item
            if claim.held and not begin(claim, ctx):
                continue
            done(claim, run_attempt(claim, registry, ctx, log_it=False))
