"""Executors run attempts; the service hands them claims and gets outcomes back.

The contract is one method: `submit(claim, ctx)`; the executor calls `done(claim, outcome)`
from any thread when the attempt ends, and `began(token)` when a held claim (one claimed
ahead of a free worker) starts, so that its attempt is counted from then on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..context import Context
from ..model import Claim, Outcome

Done = Callable[[Claim, Outcome], None]
Began = Callable[[int], None]


def never_began(token: int) -> None:
    """For executors made without a service (tests): nothing records a start."""


class Executor(Protocol):
    def submit(self, claim: Claim, ctx: Context) -> None: ...
    def resize(self, workers: int) -> None: ...
    def shutdown(self) -> None: ...
