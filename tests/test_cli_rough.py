"""The CLI's rough edges an outside operator met (issue 15), with the real `jobrun`
command: `explain` escapes what a job holds, `ls | head -1` ends quietly."""

from __future__ import annotations

import subprocess

import jobrun
import jobrun.testing
from conftest import JOBRUN, run_cli


def test_explain_escapes_control_and_bidi_characters(app: jobrun.App, store_path: str) -> None:
    """A dead job whose error holds U+202E, an ANSI escape and a newline: `jobrun explain`
    prints each escaped, one line per reason, never raw."""
    @app.task(max_attempts=1)
    def evil(name: str) -> None:
        raise ValueError(f"cannot open {name}\x1b[2J\nsecond line")

    job = evil.enqueue("report\u202etxt.exe")
    jobrun.testing.run_until_idle(app)
    assert job.refresh().state == "dead"
    r = run_cli("explain", str(job.id), "--store", store_path)
    assert r.returncode == 0, r.stderr
    assert "\u202e" not in r.stdout and "\x1b" not in r.stdout, r.stdout
    assert "report\\u202etxt.exe" in r.stdout and "\\x1b[2J" in r.stdout, r.stdout
    (last,) = [ln for ln in r.stdout.splitlines() if ln.startswith("last error:")]
    assert last.endswith("\\nsecond line"), last


def closed_early(*args: str) -> tuple[int, str]:
    """The real command writing to a pipe whose reader is gone before it writes (as `| head
    -1` leaves it, without the race): its exit code and stderr."""
    proc = subprocess.Popen([*JOBRUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), err


def test_a_closed_stdout_ends_the_command_quietly(app: jobrun.App, store_path: str) -> None:
    """`jobrun ls | head -1`: the plain table, rich's table (a name rich draws), --json and
    a typer command each end with 141 (a tool ended by SIGPIPE) or 0, and say nothing."""
    for n in range(200):
        app.enqueue("report:make", args=[n], allow_unknown=True)
    for args in (["ls", "--limit", "100"], ["ls", "--limit", "300", "--json"]):
        code, err = closed_early(*args, "--store", store_path)  # the plain table, JSON
        assert code in (0, 141) and err == "", (args, code, err)
    app.enqueue("rapport:été", allow_unknown=True)  # not plain ASCII: rich draws the table
    for args in (["ls", "--limit", "300"], ["stats"], ["show", "1"]):
        code, err = closed_early(*args, "--store", store_path)  # rich; typer's commands
        assert code in (0, 141) and err == "", (args, code, err)


def test_an_id_past_sqlites_integers_is_a_usage_error(store_path: str) -> None:
    """Found by a stranger: `jobrun cancel 99999999999999999999` was an internal error
    (OverflowError). Every command taking an id says what it accepts, exit 2."""
    jobrun.App(store_path).close()  # the store exists
    huge = "99999999999999999999"
    for args in (["cancel", huge], ["show", huge], ["explain", huge], ["retry", huge],
                 ["prune", "--id", huge]):
        r = run_cli(*args, "--store", store_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "9223372036854775807" in r.stderr and "internal error" not in r.stderr, args
