"""Queued jobs of a task that no live or recent service declares (a typo stored with
allow_unknown, an old deploy, a hostile row) go dead with UnknownTask. Jobs of a task that
another live service runs, or one that ran it lately (restarting, deploying), wait for it.
Nothing named by a row is ever imported."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ... import catalog

if TYPE_CHECKING:
    from . import ServiceView

jlog = logging.getLogger("jobrun.job")
EVERY = 5.0  # seconds between sweeps
BATCH = 500


def sweep(v: ServiceView, now: float) -> None:
    mine = v.tasks()
    pairs = [(q, t) for q, t in v.store.queued_pairs() if t not in mine]
    if not pairs:
        return
    decls: dict[str, list[tuple[str, float]]] = {}
    for task, holder, _options, seen in v.store.catalog():
        decls.setdefault(task, []).append((holder, seen))
    alive: dict[str, bool] = {}

    def is_alive(holder: str) -> bool:
        if holder not in alive:
            alive[holder] = holder == v.holder or v.presence.alive(holder)
        return alive[holder]

    for queue, task in pairs:
        if catalog.recent(decls.get(task, []), is_alive, now):
            continue
        msg = (f"task {task!r} is not run by any live or recent service of this store "
               "(a typo, an old deploy, or a module missing from `import`?)")
        while True:
            ids = v.store.dead_unknown(queue, task, msg, now=now, limit=BATCH)
            for job_id in ids:
                jlog.warning("job %s %s dead: UnknownTask: %s", job_id, task, msg,
                             extra={"jobrun": {"event": "dead", "job_id": job_id,
                                               "task": task, "queue": queue}})
            if len(ids) < BATCH:
                break
    old = {h for ds in decls.values() for h, seen in ds if seen < now - catalog.RECENT}
    for holder in old:  # declarations of long-dead services are forgotten
        if not is_alive(holder):
            v.store.forget_catalog(holder, before=now - catalog.RECENT)
