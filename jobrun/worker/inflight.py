"""The attempts a service runs now, by fencing token, and the slots they take per queue.

Keyed by token, not job id: after a thread timeout the same job's next attempt may run
here while the old thread still does. Written by the loop thread, read by maintenance.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import clock
from ..context import Context
from ..model import Claim


@dataclass(slots=True)
class Attempt:
    claim: Claim
    ctx: Context
    kind: str        # thread | process | command | async
    started: float   # monotonic: when it was handed out, or when a held attempt began
    waiting: bool = False  # held and not begun: it waits for a free worker here (loop's view)
    begun: bool = False    # a held attempt began (set by the executor's thread at once)
    began_at: float | None = None  # wall clock: when a held attempt began


class InFlight:
    def __init__(self) -> None:
        self._attempts: dict[int, Attempt] = {}
        self.busy: dict[str, int] = {}     # per queue: attempts here, held ones included
        self.held: dict[str, int] = {}     # per queue: held attempts not begun yet
        self.held_apart = 0                # of those, in other processes (process queues)
        self.held_live = 0                 # held attempts here, begun or not
        self._timed_out: set[int] = set()
        self._taken_back: set[int] = set()  # after a liveness loss: taken back, still running
        self._began: list[tuple[int, float]] = []  # (token, when): appended by any thread
        self._by_job: dict[int, int] = {}  # job id -> the token of its latest attempt here

    def add(self, claim: Claim, ctx: Context, kind: str) -> None:
        self._attempts[claim.token] = Attempt(claim, ctx, kind, clock.monotonic(), claim.held)
        self._by_job[claim.id] = claim.token
        self.busy[claim.queue] = self.busy.get(claim.queue, 0) + 1
        if claim.held:
            self.held[claim.queue] = self.held.get(claim.queue, 0) + 1
            self.held_apart += kind == "process"
            self.held_live += 1

    def began(self, token: int, a: Attempt | None = None) -> None:
        """A held attempt starts now (an executor's thread): its timeout counts from here,
        and the loop's next round records it (its attempt counts from then on). `a`: its
        attempt, when the caller has it already."""
        if a is None:
            a = self._attempts.get(token)
        at = clock.now()
        if a is not None:
            a.started = clock.monotonic()
            a.begun = True
            a.began_at = at
        self._began.append((token, at))

    def take_began(self) -> list[tuple[int, int, float]]:
        """(job id, token, when) of the held attempts that began since (the loop's thread)."""
        if not self._began:
            return []
        out: list[tuple[int, int, float]] = []
        began, self._began = self._began, []
        for token, at in began:
            a = self._attempts.get(token)
            if a is not None and a.waiting:
                a.waiting = False
                self.held[a.claim.queue] -= 1
                self.held_apart -= a.kind == "process"
                out.append((a.claim.id, token, at))
        return out

    def has_began(self) -> bool:
        return bool(self._began)

    def began_again(self, began: list[tuple[int, int, float]]) -> None:
        """A round that failed: its starts go with the next one."""
        for _, token, at in began:
            a = self._attempts.get(token)
            if a is not None:
                a.waiting = True
                self.held[a.claim.queue] += 1
                self.held_apart += a.kind == "process"
            self._began.append((token, at))

    def finish(self, token: int) -> Attempt | None:
        """The attempt came back: its slot is free again."""
        a = self._attempts.pop(token, None)
        self._taken_back.discard(token)
        if a is not None:
            if self._by_job.get(a.claim.id) == token:
                del self._by_job[a.claim.id]
            self.busy[a.claim.queue] -= 1
            if a.claim.held:
                self.held_live -= 1
            if a.waiting:
                a.waiting = False
                self.held[a.claim.queue] -= 1
                self.held_apart -= a.kind == "process"
        return a

    def waiting(self) -> list[Attempt]:
        """Held attempts not begun: a drain hands them back at once."""
        return [a for a in list(self._attempts.values()) if a.claim.held and not a.begun]

    def get(self, token: int) -> Attempt | None:
        return self._attempts.get(token)

    def attempts(self) -> list[Attempt]:
        return list(self._attempts.values())

    def timed_out(self, token: int) -> None:
        """Recorded at its timeout (a thread cannot be stopped): its late result is dropped."""
        self._timed_out.add(token)

    @property
    def timeouts(self) -> set[int]:
        """The tokens recorded at their timeout, their threads still running (the set
        itself: empty on the path of every job)."""
        return self._timed_out

    def was_timed_out(self, token: int) -> bool:
        return token in self._timed_out

    def forget_timeout(self, token: int) -> bool:
        """Whether the token had timed out (and forget it)."""
        if token in self._timed_out:
            self._timed_out.discard(token)
            return True
        return False

    def taken_back(self, token: int) -> None:
        """Rescued by others while our liveness was lost, and still running here: until it
        ends this service claims nothing (it could claim that very job again)."""
        if token in self._attempts:
            self._taken_back.add(token)

    def older_attempt(self, job_id: int) -> int | None:
        """The token of an attempt of this job still running here (one that timed out
        aside: a thread cannot be stopped, so its next attempt may run beside it)."""
        token = self._by_job.get(job_id)  # an older one than the latest has timed out
        return token if token is not None and token not in self._timed_out else None

    def holds_taken_back(self) -> bool:
        return bool(self._taken_back)

    def clear(self) -> None:
        self._attempts.clear()
        self._taken_back.clear()
        self._began.clear()
        self._by_job.clear()
        self.busy.clear()
        self.held.clear()
        self.held_apart = 0
        self.held_live = 0

    def __contains__(self, token: object) -> bool:
        return token in self._attempts

    def __len__(self) -> int:
        return len(self._attempts)
