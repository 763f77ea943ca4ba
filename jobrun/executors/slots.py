"""Slots: the threads of one queue's executor, each taking one claim at a time."""

from __future__ import annotations

import queue
import threading
from typing import cast

from .. import clock
from ..context import Context
from ..model import Claim, Outcome, error_entry
from . import Began, Done, never_began

#: In a queue of claims: "take the next claim from the executor's front line" (process.py).
FRONT = cast("tuple[Claim, Context]", ("front", None))


class Slots:
    """Threads fed by a SimpleQueue; a subclass gives one slot's loop (`_slot`), which
    returns on a None item. Set a subclass's own fields before calling this __init__: the
    threads start in it."""

    tag = ""

    def __init__(self, name: str, workers: int, done: Done, began: Began = never_began) -> None:
        self.name = name
        self._done = done
        self._began = began
        self._q: queue.SimpleQueue[tuple[Claim, Context] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.resize(workers)

    def resize(self, workers: int) -> None:
        """Grow to `workers` threads. Never shrinks: the service's cap decides how many run,
        and an idle thread costs nothing."""
        while len(self._threads) < workers:
            t = threading.Thread(target=self._slot, daemon=True,
                                 name=f"jobrun-{self.name}-{self.tag}{len(self._threads)}")
            t.start()
            self._threads.append(t)

    def submit(self, claim: Claim, ctx: Context) -> None:
        self._q.put((claim, ctx))

    def withdraw(self) -> int:
        """A drain: held claims still waiting in this queue (none of its threads free to
        take them) go back now, not when a thread frees. How many."""
        kept: list[tuple[Claim, Context] | None] = []
        back = 0
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not None and item is not FRONT and self._gone(*item):
                back += 1
            else:
                kept.append(item)
        for item in kept:
            self._q.put(item)
        return back

    def shutdown(self) -> None:
        for _ in self._threads:
            self._q.put(None)

    def _slot(self) -> None:
        raise NotImplementedError

    def _begin(self, claim: Claim, ctx: Context) -> bool:
        """Whether to run a claim taken from the queue. A held one (claimed ahead) begins
        now, unless it was cancelled or handed back (a drain) while it waited: then it
        comes back without running."""
        if not claim.held:
            return True
        if self._gone(claim, ctx):
            return False
        self._began(claim.token)
        return True

    def _gone(self, claim: Claim, ctx: Context) -> bool:
        """A held claim cancelled or withdrawn (a drain) while it waited: it comes back
        without running."""
        if claim.held and (ctx.cancelled or ctx.withdrawn):
            self._done(claim, unstarted(claim, ctx))
            return True
        return False


def unstarted(claim: Claim, ctx: Context) -> Outcome:
    """The outcome of a held claim that never began: handed back (a drain), or cancelled."""
    if ctx.handed_back or ctx.withdrawn:
        return Outcome(claim.id, claim.token, "released", extra={"unstarted": True})
    return Outcome(claim.id, claim.token, "cancelled", error=error_entry(
        "Cancelled", "cancelled before it started", claim.attempt, clock.now()),
        extra={"duration": 0.0, "unstarted": True})
