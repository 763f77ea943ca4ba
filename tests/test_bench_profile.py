"""The benchmarks' one py-spy summary (benchmarks/_profile.py), on py-spy raw output written
here: bench_core.py's single-process tables and bench_process.py's tables per process role
come from the same function, and both leave out the same waits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _profile  # noqa: E402
import bench_process  # noqa: E402

SOURCE = """\
def work():
    total = compute(1)
    done.wait(1)
    item = jobs.get()
    ready = self._selector.poll(0.1)
    msg = conn.recv_bytes()
    n = read(handle, 4)
    return total + 1
"""


def raw(tmp_path: Path, lines: list[str]) -> str:
    """A py-spy raw file of `lines` (`{L2}` is a frame at line 2 of SOURCE)."""
    src = tmp_path / "src.py"
    src.write_text(SOURCE)
    frames = {f"L{n}": f"work ({src}:{n})" for n in range(1, 9)}
    out = tmp_path / "py-spy.txt"
    out.write_text("\n".join(line.format(**frames) for line in lines) + "\n")
    return str(out)


def printed(capsys: pytest.CaptureFixture[str], prof: dict[str, Any], **how: str) -> list[str]:
    _profile.print_profile(prof, **how)
    return capsys.readouterr().out.splitlines()


def test_one_process_leaves_out_every_wait_both_benchmarks_knew(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = raw(tmp_path, [
        "thread (0x1): MainThread;main (x.py:1);{L2} 6",  # busy
        "thread (0x1): MainThread;main (x.py:1);{L8} 2",  # busy
        "thread (0x2): worker;run (x.py:1);{L3} 5",       # Event.wait
        "thread (0x2): worker;run (x.py:1);{L4} 4",       # a queue's get
        "thread (0x2): worker;run (x.py:1);{L5} 3",       # the selector (bench_process's)
        "thread (0x2): worker;run (x.py:1);{L6} 1",       # a pipe read (bench_process's)
        "thread (0x3): no python 9",                      # no Python frame: not counted
    ])
    prof = _profile.summarize_py_spy(path, top=5)
    assert (prof["samples"], prof["idle_samples"]) == (8, 13)
    assert prof["threads"] == [("thread (0x1): MainThread", 100.0)]
    assert prof["self by line"] == [(f"work ({tmp_path / 'src.py'}:2)", 75.0),
                                    (f"work ({tmp_path / 'src.py'}:8)", 25.0)]
    assert dict(prof["inclusive"]) == {"main (x.py)": 100.0,
                                       f"work ({tmp_path / 'src.py'})": 100.0}
    out = printed(capsys, prof, what="the jobrun service", how="no-op e2e, C=8",
                  that_run="1,234 jobs/s")
    assert "### Where the jobrun service spends its time (no-op e2e, C=8, 8 busy samples, " \
           "13 waiting ones left out; that run: 1,234 jobs/s)" in out
    assert [line for line in out if line.endswith(":")] == [
        "threads (% of busy samples):", "self (% of busy samples):",
        "self by line (% of busy samples):", "inclusive (% of busy samples):"]


def test_roles_share_their_own_samples(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    service = 'process 10:"python -m jobrun.cli start --config x"'
    child = 'process 10:"python -m jobrun.cli start";process 11:"forkserver";process 12:"c"'
    path = raw(tmp_path, [
        f"{service};thread (0x1): proc0;run (x.py:1);{{L2}} 3",
        f"{service};thread (0x1): proc1;run (x.py:1);{{L8}} 1",
        f"{child};thread (0x3): MainThread;run (x.py:1);{{L2}} 4",
        f"{child};thread (0x3): MainThread;run (x.py:1);{{L7}} 10",  # waits for its next job
    ])
    prof = _profile.summarize_py_spy(
        path, top=12, split=bench_process._role_and_frames, waits=bench_process._waits,
        thread=bench_process._thread, by_role=True)
    assert (prof["samples"], prof["idle_samples"]) == (8, 10)
    assert prof["roles"] == [("service", 50.0), ("child", 50.0)]
    assert prof["threads"] == [("service: procN", 50.0), ("child: MainThread", 50.0)]
    assert prof["by role"]["service"]["self by line"] == [
        (f"work ({tmp_path / 'src.py'}:2)", 75.0), (f"work ({tmp_path / 'src.py'}:8)", 25.0)]
    assert prof["by role"]["child"]["self"] == [(f"work ({tmp_path / 'src.py'})", 100.0)]
    out = printed(capsys, prof, what="jobrun's process path", how="C=2", that_run="-")
    assert "processes (% of busy samples):" in out
    assert "child, inclusive (% of that process kind's busy samples):" in out


def test_a_missing_output_is_said_once(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    prof = _profile.summarize_py_spy(str(tmp_path / "none.txt"))
    out = printed(capsys, prof, what="x", how="y", that_run="z")
    assert len(out) == 1 and out[0].startswith("py-spy profile unavailable: ")
