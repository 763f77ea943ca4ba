"""The CLI's rough edges an outside operator met (issue 15), with the real `jobrun`
command: `explain` escapes what a job holds, `ls | head -1` ends quietly."""

from __future__ import annotations

import jobrun
import jobrun.testing
from conftest import run_cli


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
