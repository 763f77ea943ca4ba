"""How `jobrun top` opens its store: the same on SQLite and on PostgreSQL, never created nor
migrated to look at, and noticed when the file under it is removed, truncated or replaced
(the connection would go on reading the old file's rows)."""

from __future__ import annotations

import os

from ..errors import StoreError
from ..presence.upgrade import held_back
from ..store import open_store
from ..store.contract import Store
from ..store.sqlite import SqliteStore


def _not_set_up(path: str) -> StoreError:
    try:
        size = os.path.getsize(path)
    except OSError:
        return StoreError(f"store {path} does not exist")
    what = "an empty file (0 bytes)" if size == 0 else "a SQLite file without jobrun's tables"
    return StoreError(f"store {path} is {what}, not a jobrun store: `jobrun start` sets one "
                      "up (or --store names another)")


def open_reader(location: str) -> Store:
    """The store to read (a SQLite path or a postgresql:// URL), opened read-only: looking
    never migrates it. A missing store, or a file that is not one, is one line."""
    store = open_store(location, readonly=True)
    try:
        if isinstance(store, SqliteStore) and store.schema()[0] == 0:
            raise _not_set_up(store.path)
    except BaseException:
        store.close()
        raise
    return store


def open_writer(location: str) -> Store:
    """The store the console's actions write through; refused (StoreError, one line) while a
    live service of an older jobrun serves an older schema: the store stays as it is."""
    reader = open_reader(location)
    try:
        reason = held_back(reader)
    finally:
        reader.close()
    if reason:
        raise StoreError(reason)
    return open_store(location, create=False)


class FileWatch:
    """The store file's identity as first read; `check` each refresh says what became of it:
    None while it is the same file, else a one-line StoreError (removed, truncated), and a
    replaced file (another inode at the path) is reopened so the frame reads the new one."""

    def __init__(self) -> None:
        self.seen: tuple[int, int] | None = None

    def check(self, store: Store) -> bool:
        """Whether the store was reopened (the caller's kept counts are then stale)."""
        if not isinstance(store, SqliteStore):
            return False
        try:
            st = os.stat(store.path)
        except FileNotFoundError:
            raise StoreError("store removed while jobrun top watched it; the last frame read "
                             f"is shown ({store.path})") from None
        if st.st_size == 0:
            raise StoreError("store truncated to 0 bytes while jobrun top watched it; the last "
                             f"frame read is shown ({store.path})")
        ident = (st.st_dev, st.st_ino)
        if self.seen is None or self.seen == ident:
            self.seen = ident
            return False
        self.seen = ident
        store.close()  # this thread's next read opens the file now at the path
        if store.schema()[0] == 0:
            raise _not_set_up(store.path)
        return True
