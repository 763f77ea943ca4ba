"""Shell-command tasks: `[tasks.NAME] command = [...]`, run without a shell unless asked.

Arguments given at enqueue are appended to the command line. Exit code 0 succeeds; anything
else fails and retries. The exit code and the last 64 KiB of stdout and stderr are kept with
the job (its result, or the error entry of a failed attempt). The command leads its own
process group: a timeout or a cancel stops the group (SIGTERM, then SIGKILL after a grace),
and so does its exit, whatever its code, for what it left running in the background.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shlex
import shutil
import subprocess
from typing import Any

from .. import clock
from ..attempt import after_failure
from ..context import Context
from ..errors import JobrunError, TaskTimeout
from ..model import Claim, Outcome, error_entry
from ..registry import Registry, TaskSpec
from . import Began, Done, groups, never_began
from .slots import Slots

TAIL = 64 * 1024
KILL_GRACE = 2.0


class CommandFailed(JobrunError):
    """A command exited non-zero; the error entry carries its exit code and output tails."""


# When the service dies (even by SIGKILL) the command must not run on beside the rescued
# job's next attempt: `setpriv --pdeathsig TERM` makes a small sh the command's guard, and
# its trap kills the command's whole process group. Without setpriv the command runs as is.
_SETPRIV = shutil.which("setpriv")
_GUARD = 'trap "kill -KILL -$$" TERM; "$@" & wait $!'


def argv(spec: TaskSpec, args: list[Any]) -> list[str]:
    extra = [a if isinstance(a, str) else json.dumps(a) for a in args]
    cmd = list(spec.command or [])
    if spec.extra.get("shell"):
        cmd = ["/bin/sh", "-c", " ".join(cmd + [shlex.quote(a) for a in extra])]
    else:
        cmd = cmd + extra
    if _SETPRIV:
        return [_SETPRIV, "--pdeathsig", "TERM", "--", "/bin/sh", "-c", _GUARD, "sh", *cmd]
    return cmd


class _Tail:
    """The last TAIL bytes of a stream."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 2 * TAIL:
            del self.buf[:-TAIL]

    def text(self) -> str:
        return bytes(self.buf[-TAIL:]).decode("utf-8", "replace")


def run_command(claim: Claim, spec: TaskSpec, ctx: Context, grace: float = KILL_GRACE
                ) -> Outcome:
    env = {**os.environ, "JOBRUN_JOB_ID": str(claim.id), "JOBRUN_ATTEMPT": str(claim.attempt)}
    if spec.extra.get("env"):
        env.update(spec.extra["env"])
    try:
        proc = subprocess.Popen(argv(spec, claim.args), cwd=spec.extra.get("cwd"), env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return after_failure(claim, CommandFailed(f"cannot run {spec.command}: {exc}"), clock.now())
    tails = {"stdout": _Tail(), "stderr": _Tail()}
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    timeout = claim.timeout or spec.timeout
    deadline = None if not timeout else clock.monotonic() + timeout
    stopped: str | None = None
    open_streams = 2
    exited_at: float | None = None
    while True:
        if open_streams:
            for key, _ in sel.select(0.2):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                else:
                    tails[key.data].add(data)
        else:  # both pipes closed: wait for the exit (still minding the timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.2)
        if proc.poll() is not None:
            if exited_at is None:  # what it left in the background goes too
                exited_at = clock.monotonic()
                groups.stop_group(proc.pid, groups.LEFTOVER_GRACE)
            # Read what is still in the pipes, shortly.
            if not open_streams or clock.monotonic() - exited_at > 0.5:
                break
            continue
        if stopped is None and ctx.cancelled:
            stopped = "cancelled"
        elif stopped is None and deadline is not None and clock.monotonic() >= deadline:
            stopped = "timeout"
        if stopped:
            groups.stop_group(proc.pid, 0.0 if ctx.handed_back else grace, leader=proc.pid,
                              reap=proc.poll)
            break
    sel.close()
    code = proc.wait()
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    stdout, stderr = tails["stdout"].text(), tails["stderr"].text()
    out = {"exit_code": code, "stdout": stdout, "stderr": stderr}
    if stopped == "cancelled" and ctx.handed_back:
        return Outcome(claim.id, claim.token, "released")
    if stopped == "cancelled":
        error = error_entry("Cancelled", "cancelled", claim.attempt, clock.now())
        error["exit_code"], error["stdout"], error["stderr"] = code, stdout, stderr
        return Outcome(claim.id, claim.token, "cancelled", error=error)
    if stopped == "timeout":
        o = after_failure(claim, TaskTimeout(f"timed out after {timeout:g}s: process group stopped"),
                   clock.now())
    elif code == 0:
        return Outcome(claim.id, claim.token, "succeeded", result=json.dumps(out))
    else:
        o = after_failure(claim, CommandFailed(f"exit code {code}"), clock.now())
    if o.error is not None:
        o.error["exit_code"], o.error["stdout"], o.error["stderr"] = code, stdout, stderr
        o.error["traceback"] = ""
    return o


class CommandExecutor(Slots):
    """Threads that each run one command at a time, for one queue."""

    tag = "cmd"

    def __init__(self, name: str, workers: int, registry: Registry, done: Done,
                 began: Began = never_began) -> None:
        self._registry = registry
        super().__init__(name, workers, done, began)

    def _slot(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            claim, ctx = item
            if not self._begin(claim, ctx):
                continue
            started = clock.timer()
            outcome = run_command(claim, self._registry.get(claim.task), ctx)
            outcome.extra["duration"] = clock.timer() - started
            self._done(claim, outcome)
