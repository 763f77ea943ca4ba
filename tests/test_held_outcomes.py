"""A held attempt that began and ended between two rounds: no `began` row goes to the
store for it (InFlight.take_began leaves it out once finished); its outcome carries its
start instead, so the write recording it counts the attempt even when it misses (the job
cancelled meanwhile: tests/store/test_held.py has the store's side)."""

from __future__ import annotations

from jobrun.context import Context
from jobrun.model import BEGAN, Claim, Outcome
from jobrun.worker.inflight import InFlight
from jobrun.worker.outcomes import Outcomes


def claim(token: int, *, held: bool) -> Claim:
    return Claim(id=token, task="t", queue="q", args=[], kwargs={}, attempt=1, max_attempts=3,
                 token=token, trace_id=None, timeout=None, options={}, held=held)


def test_a_held_attempt_that_began_carries_its_start_on_its_outcome() -> None:
    inflight = InFlight()
    outcomes = Outcomes(inflight)
    began, unstarted, plain = claim(1, held=True), claim(2, held=True), claim(3, held=False)
    for c in (began, unstarted, plain):
        inflight.add(c, Context(c.id, 1, "t", None, "q", c.token), "thread")
    inflight.began(began.token)
    for c in (began, unstarted, plain):
        outcomes.put(c, Outcome(c.id, c.token, "succeeded"))
    got = {c.token: o for c, o in outcomes.take()}
    assert isinstance(got[1].extra.get(BEGAN), float)
    assert BEGAN not in got[2].extra and BEGAN not in got[3].extra
    assert inflight.take_began() == []  # no row of its own: the outcome's write counts it
