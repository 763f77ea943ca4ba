"""The console's actions, on one job or on every job the filter matches, through the store's
own operations (`retry`, `cancel`, `prune_job`: what `jobrun retry`, `cancel` and
`prune --id` call). Each returns one line to show and whether it is an error, so the app
only asks and shows."""

from __future__ import annotations

from ..ops.explain import not_retried
from ..settings import Settings
from ..store.contract import Store
from .browse import PAGE, page
from .snapshot import Snapshot

ACTIONS = ("retry", "cancel", "delete")


def act(store: Store, action: str, job_id: int, *, now: float) -> tuple[str, bool]:
    """Do `action` to one job: (the line to show, whether it failed)."""
    if action == "retry":
        ok = bool(store.retry(job_id, now=now))
        if ok:
            return f"job {job_id} queued again", False
        return f"retry: {not_retried(store, job_id)}", True
    if action == "cancel":
        return cancelled(job_id, store.cancel(job_id, now=now))
    ok = store.prune_job(job_id)
    return (f"job {job_id} deleted" if ok else
            f"delete: job {job_id} not deleted (unfinished, gone, or the newest job, "
            "kept so its id is never given again)"), not ok


FINISHED = {"succeeded": "succeeded", "dead": "died", "cancelled": "was cancelled"}


def cancelled(job_id: int, was: str | None) -> tuple[str, bool]:
    """The store's answer to a cancel, in words: a job that finished while the question was
    open was not cancelled (the store left it as it was), and the line says so."""
    if was is None:
        return f"cancel: job {job_id} no longer exists", True
    if was in FINISHED:
        return f"job {job_id} not cancelled: it {FINISHED[was]} meanwhile", True
    if was == "running":
        return (f"job {job_id} cancelled (it was running, or held: its service stops it, or "
                "never starts it)"), False
    return f"job {job_id} cancelled (was {was})", False


def bulk(reader: Store, store: Store, action: str, state: str, *,
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


def scale(store: Store, queue: str, step: int, snap: Snapshot | None,
          settings: Settings | None) -> tuple[str, bool]:
    """A queue's concurrency one step up or down, for every service (at least 1): from the
    live value set before, else what a service serves, else the config's."""
    was = store.concurrency().get(queue) or max(
        (c for s in (snap.services if snap else ()) for q, c in s.queues if q == queue),
        default=None) or configured(queue, snap, settings)
    n = max(1, was + step)
    if n == was:
        return f"queue {queue}: concurrency stays {n} (at least 1)", True
    store.set_concurrency(queue, n)
    return (f"queue {queue}: concurrency {n}, one cap for all its services (was {was}); running services "
            "take it within a poll"), False


def configured(queue: str, snap: Snapshot | None, settings: Settings | None) -> int:
    """The concurrency a queue runs at without a live change: the largest its services'
    configs give it (what they publish as configured, not what they serve now: that is the
    live value while one is set), else this console's config's."""
    return max(configured_by(queue, snap), default=None) \
        or (settings or Settings()).queue(queue).concurrency


def configured_by(queue: str, snap: Snapshot | None) -> list[int]:
    """The queue's cap in each live service's own config (a service's cap is its own, so
    they may differ; an older service that does not publish one is left out)."""
    return sorted({c for s in (snap.services if snap else ()) for q, c in s.configured
                   if q == queue})


def configured_words(queue: str, snap: Snapshot | None, settings: Settings | None) -> str:
    """The configured value in words: one number, or each service's when they differ."""
    each = configured_by(queue, snap)
    if len(each) > 1:
        return "its services' configs (" + ", ".join(map(str, each)) + ")"
    return str(configured(queue, snap, settings)) if each else \
        f"{configured(queue, snap, settings)} (this console's config: no service serves it)"


def reset(store: Store, queue: str, snap: Snapshot | None,
          settings: Settings | None) -> tuple[str, bool]:
    """Drop a queue's live concurrency (+/-): every service goes back to its configured
    value within a poll."""
    was = store.concurrency().get(queue)
    if was is None:
        return f"reset: queue {queue} already runs at its configured concurrency", True
    store.set_concurrency(queue, None)
    return (f"queue {queue}: concurrency back to the configured "
            f"{configured_words(queue, snap, settings)} (was {was}); running services "
            "take it within a poll"), False


COUNTED = ("dead", "queued", "scheduled", "running", "retrying")  # counted per queue
DONE = {"retry": "retried", "cancel": "cancelled", "delete": "deleted"}


def done_line(action: str, n: int, missed: int, state: str) -> str:
    """What a bulk action did, in words: "deleted 2,990 dead jobs"."""
    said = f"{DONE.get(action, action)} {n:,} {state} job{'' if n == 1 else 's'}"
    return said + (f"; {missed:,} not (changed meanwhile)" if missed else "")


def how_many(snap: Snapshot | None, state: str, queue: str | None, *, text: str, loaded: int,
             more: bool) -> str:
    """The count a bulk action would touch: the snapshot's per-queue count of the state when
    no text narrows it, else what is loaded, said to be a lower bound (never "100+")."""
    if snap is not None and not text and state in COUNTED:
        n = sum(getattr(q, state) for q in snap.queues if queue in (None, q.name))
        if n >= loaded:
            return f"{n:,} job{'' if n == 1 else 's'}"
    return f"{loaded:,} job{'' if loaded == 1 else 's'}" + \
        (", and more not yet counted" if more else "")


def queue_refusal(action: str, queue: str | None, *, read_only: bool, shown: bool,
                  in_queues: bool) -> str | None:
    """Why a queue key (`p`, `+`, `-`) does not apply, in one line; None when it does."""
    if read_only:
        return f"read-only: {action} refused (jobrun top --read-only)"
    if not shown:
        return f"{action}: escape to the queues first (this screen shows no selected queue)"
    if queue is None:
        return (f"{action}: (all) is not a queue; move to a queue's row (up/down)" if in_queues
                else f"{action}: select a queue first (tab to the queues)")
    return None


def toggle(store: Store, queue: str, snap: Snapshot | None) -> tuple[str, bool]:
    """Pause a queue, or resume it if the snapshot shows it paused."""
    paused = snap is not None and any(q.paused for q in snap.queues if q.name == queue)
    store.set_paused(queue, not paused)
    return f"queue {queue} {'resumed' if paused else 'paused'}", False
