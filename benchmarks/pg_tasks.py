"""Tasks for bench_postgres.py: a no-op for jobrun and the same no-op for procrastinate, in a
module the services, the workers and the bench all import by name. `$BENCH_PG_PEER` is the
peer's DSN (its own schema of the bench database)."""

from __future__ import annotations

import os

import jobrun

app = jobrun.App()  # registration only: the bench enqueues through an App of its own


@app.task
def noop(i: int = 0) -> None:
    """Nothing: what is measured is the queue."""


def peer_app(sync: bool) -> object:
    """procrastinate's App on $BENCH_PG_PEER, with the same no-op: a sync connector for
    deferring from the bench, the async one for its workers."""
    import procrastinate

    dsn = os.environ["BENCH_PG_PEER"]
    connector = (procrastinate.SyncPsycopgConnector(conninfo=dsn) if sync
                 else procrastinate.PsycopgConnector(conninfo=dsn))
    papp = procrastinate.App(connector=connector)

    @papp.task(name="noop")
    def peer_noop(i: int = 0) -> None:
        """Nothing, as `noop`."""

    return papp


def peer_worker(concurrency: int) -> None:
    """One procrastinate worker process (the bench's `_peer-worker` sub-command)."""
    papp = peer_app(sync=False)
    papp.run_worker(concurrency=concurrency, install_signal_handlers=True)  # type: ignore[attr-defined]
