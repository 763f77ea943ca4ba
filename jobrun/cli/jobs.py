"""`jobrun enqueue`, `ls`, `show`, `stats`, `explain`, `retry`, `cancel`, `prune`: jobs."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from .. import clock
from ..config import duration
from .base import (
    EX_USAGE,
    MAX_ID,
    ConfigOpt,
    JobId,
    JsonOpt,
    StoreOpt,
    _open,
    _print_json,
    cli,
    fail,
    job_json,
    open_store,
    say,
)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (NaN and infinities are refused)")


def _json_arg(text: str, what: str) -> Any:
    """A JSON argument of the command line: a NaN is a typo like any other (exit 2)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        fail(f"{what} not JSON: {exc}", EX_USAGE)


# -- enqueue -------------------------------------------------------------------------------
@cli.command()
def enqueue(task: Annotated[Optional[str], typer.Argument(help="Task name.")] = None,
            args_json: Annotated[Optional[str], typer.Argument(metavar="[ARGS_JSON]")] = None,
            kwargs: Annotated[Optional[str], typer.Option("--kwargs")] = None,
            queue: Annotated[Optional[str], typer.Option("--queue")] = None,
            delay: Annotated[Optional[float], typer.Option("--delay")] = None,
            key: Annotated[Optional[str], typer.Option("--key")] = None,
            priority: Annotated[Optional[int], typer.Option("--priority")] = None,
            file: Annotated[Optional[str], typer.Option("--file", help="jobs.toml")] = None,
            allow_unknown: Annotated[bool, typer.Option(
                "--allow-unknown", help="Store it even if no service declares the task.")
            ] = False,
            as_json: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Enqueue a job and print its id (or every [[job]] of --file, in one transaction)."""
    if file:
        from ..jobsfile import load_calls

        calls = load_calls(file)  # the file's own errors first: exit 1, naming the file
        app = _open(config, store, import_tasks=True)
        ids = [j.id for j in app.enqueue_many(calls)]
        say(as_json, {"ids": ids}, "\n".join(map(str, ids)))
        return
    app = _open(config, store, import_tasks=True)
    if not task:
        fail("give a TASK (or --file jobs.toml)", EX_USAGE)
    args = _json_arg(args_json, "arguments are") if args_json else []
    kw = _json_arg(kwargs, "arguments are") if kwargs else {}
    if isinstance(args, dict) and kwargs is None:
        args, kw = [], args
    if not isinstance(args, list):
        args = [args]
    job = app.enqueue(task, args=args, kwargs=kw, queue=queue, delay=delay, key=key,
                      priority=priority, allow_unknown=allow_unknown)
    say(as_json, {"id": job.id}, str(job.id))


# -- reading -------------------------------------------------------------------------------
@cli.command("ls")
def ls_(state: Annotated[Optional[str], typer.Option("--state")] = None,
        queue: Annotated[Optional[str], typer.Option("--queue")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1)] = 50, as_json: JsonOpt = False,
        config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Jobs, newest first."""
    from .fast import ls

    ls(state, queue, limit, as_json, config, store)


@cli.command()
def show(job_id: JobId, as_json: JsonOpt = False, config: ConfigOpt = None,
         store: StoreOpt = None) -> None:
    """One job, with its error history."""
    st = open_store(config, store, readonly=True).store
    rec = st.get(job_id)
    if rec is None:
        fail(f"no job {job_id}")
    steps, children = st.steps(job_id), st.children(job_id)
    ended = rec.state.value in ("dead", "cancelled", "succeeded")  # its waits are over
    if as_json:
        from ..workflows.views import step_json

        _print_json({**job_json(rec, full=True), "parent": st.parents([job_id]).get(job_id),
                     "steps": [step_json(s, ended) for s in steps], "children": children})
        return
    from .views import job_detail, render

    render(job_detail(rec))
    if steps or children:
        from ..workflows.views import steps_table

        render(steps_table(steps, children, ended))


@cli.command()
def stats(as_json: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Per queue: depth, running, oldest queued age, last hour's outcomes, failure rate."""
    from ..ops.stats import queue_stats

    data = queue_stats(open_store(config, store, readonly=True).store, now=clock.now())
    if as_json:
        _print_json({"queues": data})
        return
    from .views import render, stats_table

    render(stats_table(data))


@cli.command()
def explain(job_id: JobId, as_json: JsonOpt = False, config: ConfigOpt = None,
            store: StoreOpt = None) -> None:
    """Why a job is not running now: its time, a retry, a paused queue, a cap or rate
    limit, or no live service serving its queue."""
    from ..ops.explain import explain_json, gather, reasons

    app = open_store(config, store, import_tasks=True, readonly=True)
    rec = app.store.get(job_id)
    if rec is None:
        fail(f"no job {job_id}")
    now = clock.now()
    facts = gather(app.store, rec, app.settings, now)
    if as_json:
        _print_json(explain_json(rec, facts, now))
        return
    for line in reasons(rec, facts, now):
        typer.echo(line)


# -- acting --------------------------------------------------------------------------------
@cli.command("send-event")
def send_event(name: str,
               payload_json: Annotated[Optional[str], typer.Argument(metavar="[PAYLOAD_JSON]")
                                       ] = None,
               as_json: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None
               ) -> None:
    """Send an event to workflows waiting in jobrun.wait_event(NAME) (the oldest waiter
    takes it; none waiting: it waits for one). Without a payload it arrives as true."""
    payload = _json_arg(payload_json, "payload is") if payload_json is not None else None
    open_store(config, store)  # an existing store only: a typo must not make a new one
    event_id = _open(config, store).send_event(name, payload)
    say(as_json, {"id": event_id, "name": name}, f"event {event_id} {name} sent")


@cli.command()
def retry(job_id: Annotated[Optional[int], typer.Argument(min=0, max=MAX_ID)] = None,
          dead: Annotated[bool, typer.Option("--dead", help="Every dead job.")] = False,
          as_json: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Dead, cancelled or retrying jobs back to queued."""
    if (job_id is None) == (not dead):
        fail("give a job ID or --dead", EX_USAGE)
    app = open_store(config, store)
    ids = app.store.retry(None if dead else job_id, now=clock.now())
    if not dead and not ids and job_id is not None:
        from ..ops.explain import not_retried
        fail(not_retried(app.store, job_id))
    if ids:
        app.ring()
    say(as_json, {"ids": ids}, f"{len(ids)} job(s) queued again")


@cli.command()
def cancel(job_id: JobId, as_json: JsonOpt = False, config: ConfigOpt = None,
           store: StoreOpt = None) -> None:
    """Cancel a job: at once if waiting; a running one is asked to stop."""
    app = open_store(config, store)
    before = app.store.cancel(job_id, now=clock.now())
    if before is None:
        fail(f"no job {job_id}")
    if before in ("succeeded", "dead", "cancelled"):
        fail(f"job {job_id} already finished ({before})")
    state = "running" if before == "running" else "cancelled"  # a running one: asked to stop
    say(as_json, {"id": job_id, "previous": before, "state": state},
        f"job {job_id} cancelled" + (" (it was running, or held for a worker: its service "
                                     "stops it, or never starts it)"
                                     if before == "running" else ""))


@cli.command()
def prune(older_than: Annotated[Optional[str], typer.Option("--older-than",
                                                          help="e.g. 7d, 12h")] = None,
          job_id: Annotated[Optional[int], typer.Option("--id", help="One finished job.",
                                                        min=0, max=MAX_ID)] = None,
          as_json: JsonOpt = False, config: ConfigOpt = None, store: StoreOpt = None) -> None:
    """Delete finished jobs older than that, or one finished job by id."""
    if (older_than is None) == (job_id is None):
        fail("give --older-than AGE or --id JOB (one of them)", EX_USAGE)
    if job_id is not None:
        if not open_store(config, store).store.prune_job(job_id):
            fail(f"job {job_id} not pruned: not found, not finished, or the newest job "
                 "(kept so its id is never given again)")
        say(as_json, {"pruned": 1}, f"pruned job {job_id}")
        return
    assert older_than is not None
    try:
        seconds = duration(older_than)
    except ValueError as exc:
        fail(str(exc), EX_USAGE)
    n = open_store(config, store).store.prune(clock.now() - seconds)
    say(as_json, {"pruned": n}, f"pruned {n} job(s)")


