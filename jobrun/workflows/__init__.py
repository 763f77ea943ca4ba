"""Durable workflows: tasks whose body is replayed, steps recorded in the store.

    @app.step(max_attempts=3)
    def charge(order_id: int) -> str: ...

    @app.workflow
    def refund(order_id: int) -> str:
        receipt = charge(order_id)              # recorded: a replay returns it, not running
        jobrun.sleep(3 * 86400)                 # waits in the store, no slot held
        ok = jobrun.wait_event(f"approved:{order_id}", timeout=7 * 86400)
        scores = jobrun.gather([score.call(i) for i in range(10)])  # child jobs
        return receipt

A body runs from the top each time its job runs (`run.py`); each recorded call takes the next
number, and its record answers it on replay (`steps.py`); waits end the attempt with a
suspend and are woken by the store (`waits.py`). Records live in the `steps` table of the
same SQLite file; events in `events`; children name their parent in `jobs.parent`.
"""

from .run import MAX_STEPS, current_run
from .steps import Step, Workflow, body_runner
from .waits import gather, sleep, wait_event

__all__ = ["MAX_STEPS", "Step", "Workflow", "body_runner", "current_run", "gather", "sleep",
           "wait_event"]
