"""Where a store is: a SQLite file path or a PostgreSQL URL, told apart in one place, so a URL
is never taken for a file name (that made `./postgresql:/...` files and served them)."""

from __future__ import annotations

import os
import re

from .errors import StoreError

POSTGRES = ("postgresql://", "postgres://")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: str) -> bool:
    return bool(_SCHEME.match(location))


def is_postgres(location: str) -> bool:
    return location.startswith(POSTGRES)


def foreign(location: str) -> str | None:
    """Why `location` names no store jobrun can open (a URL of another kind), or None."""
    if not is_url(location) or is_postgres(location):
        return None
    scheme = location.split("://", 1)[0]
    if scheme.lower() in ("postgresql", "postgres"):
        return f"write the scheme in lower case: {scheme.lower()}://..."
    return (f"{scheme}:// is not a store jobrun knows: use a SQLite file path or a "
            "postgresql://user@host:port/dbname URL")


def refuse_foreign(location: str) -> None:
    why = foreign(location)
    if why:
        raise StoreError(f"store {location!r}: {why}")


def absolute(location: str) -> str:
    """A URL as it is; a path with `~` expanded, made absolute."""
    return location if is_url(location) else os.path.abspath(os.path.expanduser(location))


def canonical(location: str) -> str:
    """A URL as it is; a path with its links resolved: how a store is keyed and compared."""
    return location if is_url(location) else os.path.realpath(os.path.expanduser(location))


def exists(location: str) -> bool:
    """Whether there is a store to open: a file; a database is asked once connected."""
    return is_url(location) or os.path.exists(location)


def writable_beside(location: str) -> bool:
    """Whether this user may write in a store file's folder (its -wal and -shm go there);
    a URL has no folder."""
    return not is_url(location) and os.access(os.path.dirname(location) or ".", os.W_OK)


def beside(location: str | None, file: str) -> str | None:
    """`~` expanded; a relative path is beside its config file (a URL is kept)."""
    if location is None or is_url(location):
        return location
    if file != "<string>" and not os.path.isabs(os.path.expanduser(location)):
        location = os.path.join(os.path.dirname(os.path.abspath(file)), location)
    return os.path.expanduser(location)
