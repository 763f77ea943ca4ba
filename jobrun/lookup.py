"""What a producer checks before it writes a job: the task's defaults, that some service
declares it (else UnknownTask, naming the closest), and that its queue is served (else a
warning once: a typo'd queue's jobs would wait for ever)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import catalog, validate
from .config import Settings
from .errors import InvalidJob, UnknownTask
from .queues import known_queues
from .registry import REGISTRY
from .store.contract import Store
from .store.sqlite import catalog_readers

log = logging.getLogger("jobrun")
_WARNED_EMPTY: set[str] = set()
_text = validate.text


class TaskLookup:
    """One per App; the catalog view is read once and cached (it refreshes itself)."""

    def __init__(self, settings: Callable[[], Settings], store: Callable[[], Store],
                 where: Callable[[], str], inline: Callable[[], bool],
                 borrowed: Callable[[Any], bool]) -> None:
        self._settings, self._store, self._where, self._inline = settings, store, where, inline
        self._borrowed = borrowed
        self._catalog: catalog.CatalogView | None = None
        self._queues_seen: set[str] = set()

    def defaults(self, task: str, queue: str | None, allow_unknown: bool = False,
                 connection: Any = None) -> catalog.TaskDefaults:
        """A task's enqueue defaults: what it declares (here, or in the store's catalog),
        then its queue's config, then jobrun's. An unknown name raises UnknownTask."""
        if not isinstance(task, str) or not task:
            raise InvalidJob(f"task must be a task name string, not {task!r}")
        _text(task, "task name")
        if queue is not None:
            _text(queue, "queue")
        spec = REGISTRY.find(task)
        cmd = self._settings().tasks.get(task)
        entry = None
        if not self._inline():
            view = self._catalog_view(connection)
            entry = view.lookup(task)
            if view.empty:
                self._warn_no_service()
            elif entry is None and spec is None and cmd is None and not allow_unknown:
                close = catalog.close_matches(task, view.names())
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UnknownTask(
                    f"unknown task {task!r}: no service on store {self._where()} declares "
                    f"it{hint} (allow_unknown=True, or --allow-unknown, stores it anyway)")
        if queue is not None and not self._inline() and queue not in self._queues_seen:
            self._check_queue(queue)
        return catalog.resolve(spec, cmd, entry, self._settings(), queue)

    def _check_queue(self, queue: str) -> None:
        """A queue given for a job that no config, service or task knows is likely a typo:
        its jobs would wait for ever. Said once per queue (it may be served later)."""
        self._queues_seen.add(queue)
        try:
            known = known_queues(self._store(), self._settings())
        except Exception:
            return
        if queue not in known:
            close = catalog.close_matches(queue, sorted(known))
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            log.warning("queue %r is not served by any service of store %s, nor declared in "
                        "a config or by a task%s: its jobs wait until a service serves it",
                        queue, self._where(), hint)

    def _catalog_view(self, connection: Any = None) -> catalog.CatalogView:
        if self._catalog is None:
            if self._borrowed(connection):
                return catalog.CatalogView(*catalog_readers(connection))
            store = self._store()
            self._catalog = catalog.CatalogView(store.catalog, store.catalog_born)
        return self._catalog

    def _warn_no_service(self) -> None:
        """Jobs written where no service ever declared tasks may never run: say so once."""
        path = self._where()
        if path not in _WARNED_EMPTY:
            _WARNED_EMPTY.add(path)
            log.warning("no service has ever declared tasks in store %s: when the first one "
                        "starts there, jobs of tasks it does not run go dead (UnknownTask). "
                        "Is the service using another store? (check $JOBRUN_STORE and the "
                        "config's `store`)", path)
