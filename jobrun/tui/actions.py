"""The console's actions, on one job or on every job the filter matches, through the store's
own operations (`retry`, `cancel`, `prune_job`: what `jobrun retry`, `cancel` and
`prune --id` call). Each returns one line to show and whether it is an error, so the app
only asks and shows."""

from __future__ import annotations

from ..store.sqlite import SqliteStore
from .browse import PAGE, page

ACTIONS = ("retry", "cancel", "delete")


def act(store: SqliteStore, action: str, job_id: int, *, now: float) -> tuple[str, bool]:
    """Do `action` to one job: (the line to show, whether it failed)."""
    if action == "retry":
        ok = bool(store.retry(job_id, now=now))
        return (f"job {job_id} queued again" if ok else
                f"retry: job {job_id} no longer retryable (or its key is taken)"), not ok
    if action == "cancel":
        was = store.cancel(job_id, now=now)
        return (f"job {job_id} cancelled (was {was})" if was else
                f"cancel: job {job_id} no longer exists"), not was
    ok = store.prune_job(job_id)
    return (f"job {job_id} deleted" if ok else
            f"delete: job {job_id} not deleted (unfinished, gone, or the newest job, "
            "kept so its id is never given again)"), not ok


def bulk(reader: SqliteStore, store: SqliteStore, action: str, state: str, *,
         queue: str | None, text: str, now: float, args: bool = True) -> tuple[int, int]:
    """Do `action` to every job in `state` (and `queue`) matching `text`, a page at a time
    (bounded reads; a job acted on leaves the list); returns (done, not done)."""
    done = missed = 0
    after = None
    while True:
        got = page(reader, state, queue=queue, text=text, after=after, limit=PAGE, args=args)
        for row in got.rows:
            _, failed = act(store, action, row.id, now=now)
            missed += failed
            done += not failed
        if got.after is None:
            return done, missed
        after = got.after
