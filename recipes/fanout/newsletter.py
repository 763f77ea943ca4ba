"""Fan-out: one action enqueues a job per subscriber, all in one transaction.

`app.enqueue_many([task.call(...), ...])` validates every call first (a payload that is not
JSON refuses the whole batch), then stores every job in one SQLite transaction: either all
10,000 jobs exist or none does, and it takes a fraction of a second.

`publish(issue_id, subscribers)` is itself a job (so a web request only enqueues one small
job). It fans out inside `jobrun.once(f"publish:{issue_id}")`, passing `op.connection` to
`enqueue_many`: the per-subscriber jobs commit together with the once-record, so a retried or
re-enqueued `publish` never fans out twice.
"""

from __future__ import annotations

from collections.abc import Iterable

import jobrun

app = jobrun.App()


@app.task(queue="newsletter")
def send_issue(issue_id: int, subscriber_id: int) -> int:
    """One small job per subscriber (here: trivial; render and send the issue in real life)."""
    return subscriber_id


def fan_out(issue_id: int, subscriber_ids: Iterable[int], *,
            connection: object = None) -> list[jobrun.Job]:
    """Enqueue `send_issue` for every subscriber in one transaction (or in `connection`'s)."""
    return app.enqueue_many([send_issue.call(issue_id, s) for s in subscriber_ids],
                            connection=connection)


@app.task(queue="newsletter")
def publish(issue_id: int, subscribers: int) -> int:
    """Fan out once per issue; returns how many jobs this run enqueued (0 on a re-run)."""
    with jobrun.once(f"publish:{issue_id}") as op:
        if op.done:
            return 0
        # Subscribers 1..N stand in for a `SELECT id FROM subscribers`.
        jobs = fan_out(issue_id, range(1, subscribers + 1), connection=op.connection)
    # op.duplicate: a concurrent run recorded the issue first; our batch was rolled back.
    return 0 if op.duplicate else len(jobs)
