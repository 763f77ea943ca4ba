"""Executors run attempts; the service hands them claims and gets outcomes back.

The contract is one method: `submit(claim, ctx)`; the executor calls `done(claim, outcome)`
from any thread when the attempt ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..context import Context
from ..model import Claim, Outcome

Done = Callable[[Claim, Outcome], None]


class Executor(Protocol):
    def submit(self, claim: Claim, ctx: Context) -> None: ...
    def resize(self, workers: int) -> None: ...
    def shutdown(self) -> None: ...
