"""Presence on PostgreSQL, for services on several hosts: liveness and cron leadership are
session-level advisory locks (store/postgres_locks.py), gone the moment a host's connection
ends; what a service says about itself is a row of `meta`; the doorbell is LISTEN/NOTIFY,
rung inside the transactions that insert jobs or events (a rollback rings nobody).
A partitioned host that keeps running loses its locks with its connections: the others
rescue its jobs, its late results are refused by their fencing tokens, and it takes its
liveness again when it can (`keep`)."""

from __future__ import annotations

import json
import logging
import os
import select
import socket
from typing import Any, cast

import psycopg
from psycopg import sql as psql

from .. import clock
from ..errors import StoreError
from ..store.contract import Store
from ..store.postgres import PostgresStore
from ..store.postgres_locks import close_in_child
from ..store.postgres_sql import PQ, sql
from .contract import Doorbell, Leadership, Liveness, Presence

log = logging.getLogger("jobrun.service")
HOLDER, LEADER = "holder", "leader"


class PgLiveness(Liveness):
    def __init__(self, store: PostgresStore, holder: str, info: dict[str, Any]) -> None:
        self.store, self.holder = store, holder
        self.info = {"holder": holder, "pid": os.getpid(), "started": clock.now(), **info}

    def acquire(self) -> bool:
        if not self.store.locks.take(HOLDER, self.holder):
            return False
        self.publish(self.info)
        return True

    def publish(self, info: dict[str, Any]) -> None:
        self.info = info
        with self.store.write() as conn:
            conn.execute(sql(PQ["holder_put"]), {"holder": self.holder,
                                                 "info": json.dumps(info)})

    def keep(self) -> bool:
        if self.store.locks.still_held(HOLDER, self.holder):
            return True
        log.warning("service %s lost its liveness lock (its connection was cut off): its "
                    "jobs may be rescued by others; taking it again", self.holder)
        self.losses += 1
        try:
            return self.acquire()
        except StoreError as exc:
            log.error("could not take liveness lock %s again: %s", self.holder, exc)
            return False

    def release(self) -> None:
        try:
            with self.store.write() as conn:
                conn.execute(sql(PQ["holder_forget"]), {"holder": self.holder})
        finally:
            self.store.locks.let_go(HOLDER, self.holder)


class PgLeadership(Leadership):
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    @property
    def held(self) -> bool:
        return self.store.locks.still_held(LEADER, "cron")

    def acquire(self, holder: str) -> bool:
        if not self.store.locks.take(LEADER, "cron"):
            return False
        with self.store.write() as conn:
            conn.execute(sql(PQ["leader_put"]), {"holder": holder})
        return True

    def release(self) -> None:
        self.store.locks.let_go(LEADER, "cron")


class PgBell:
    """LISTEN on a connection of its own, beside a socket pair for this process's threads.
    A connection lost is made again at the next wait, which then counts as rung (a
    notification may have been missed); the service's slow poll covers the rest."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._r, self._w = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self._listen()

    def _listen(self) -> None:
        try:
            conn = psycopg.connect(self.store.path, autocommit=True, connect_timeout=5,
                                   application_name="jobrun bell")
        except psycopg.Error as exc:
            log.warning("doorbell of %s: cannot listen (%s); polling", self.store.shown,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            return
        try:
            row = conn.execute(sql(PQ["bell_channel"])).fetchone()
            assert row is not None
            conn.execute(psql.SQL(sql(PQ["listen"])).format(channel=psql.Identifier(row[0])))
        except psycopg.Error:
            conn.close()
            return
        close_in_child(conn)
        self._conn = conn

    def wake(self) -> None:
        try:
            self._w.send(b"w")
        except OSError:
            pass  # already woken

    def wait(self, timeout: float) -> bool:
        conn, rung = self._conn, False
        if conn is None and not self._closed:
            self._listen()
            conn, rung = self._conn, self._conn is not None
        fds: list[Any] = [self._r] + ([conn.fileno()] if conn is not None else [])
        ready = select.select(fds, [], [], timeout)[0] if timeout > 0 else fds
        try:
            while True:
                self._r.recv(64)
        except OSError:
            pass
        if conn is not None and (timeout <= 0 or conn.fileno() in ready):
            try:
                for _ in conn.notifies(timeout=0):
                    rung = True
            except psycopg.Error:
                self._drop()
                rung = True
        return rung

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._closed = True
        self._drop()
        self._r.close()
        self._w.close()


class PgRinger:
    """Producers ring nobody themselves: the store's inserts notify in their transaction."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def ring(self) -> None:
        pass  # notified by the enqueue's own transaction

    def ring_after(self, connection: Any) -> None:
        pass  # notified inside the caller's transaction: delivered on its commit


class PgPresence(Presence):
    def __init__(self, store: Store) -> None:
        if not isinstance(store, PostgresStore):
            raise StoreError(f"store {store.path}: not a PostgreSQL store")
        self.store = store

    def liveness(self, holder: str, info: dict[str, Any] | None = None) -> Liveness:
        return PgLiveness(self.store, holder, info or {})

    def alive(self, holder: str) -> bool:
        return self.store.holder_alive(holder)

    def holders(self) -> list[str]:
        return [r[0] for r in self.store.read(PQ["holders_list"], {})]

    def info(self, holder: str) -> dict[str, Any]:
        found = self.store.read(PQ["holder_get"], {"holder": holder})
        try:
            data = json.loads(found[0][0]) if found and found[0][0] else {}
        except ValueError:
            return {}
        return cast(dict[str, Any], data) if isinstance(data, dict) else {}

    def lost(self, holder: str) -> str:
        """A free liveness lock on PostgreSQL is a death or a cut connection: a holder of this
        host whose process still runs was cut off, not dead."""
        info = self.info(holder)
        pid = info.get("pid")
        if info.get("host") == socket.gethostname() and isinstance(pid, int) and _runs(pid):
            return f"service process {holder} lost its liveness (its connection was cut off)"
        return f"service process {holder} lost its liveness (it died or was cut off)"

    def sweep(self, mine: str) -> None:
        for h in self.holders():
            if h != mine and not self.alive(h):
                with self.store.write() as conn:
                    conn.execute(sql(PQ["holder_forget"]), {"holder": h})

    def leadership(self) -> Leadership:
        return PgLeadership(self.store)

    def leader(self) -> str | None:
        if not self.store.lock_is_held(LEADER, "cron"):
            return None
        found = self.store.read(PQ["leader_get"], {})
        return str(found[0][0]) if found and found[0][0] else "?"

    def bell(self, holder: str) -> Doorbell:
        return PgBell(self.store)

    def ringer(self) -> PgRinger:
        return PgRinger(self.store)

    def wake_all(self) -> None:
        with self.store.write() as conn:
            conn.execute(sql(PQ["notify"]))


def _runs(pid: int) -> bool:
    """Whether process `pid` of this host runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except OSError:
        return False
