"""The README's own examples: every Python block runs, every CLI command it shows exists."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import JOBRUN, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_blocks_run(index: int, tmp_path: Path) -> None:
    code = blocks("python")[index]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUN_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"README python block {index} failed:\n{code}\n{r.stderr}"


def cli_commands() -> list[list[str]]:
    out = []
    for block in blocks("sh"):
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            for part in re.split(r"&&|\|", line):
                words = shlex.split(part.strip()) if part.strip() else []
                for i, w in enumerate(words):
                    if (w.endswith("jobrun") and "/" not in w.replace(".venv/bin/jobrun", "")) \
                            or w.endswith("/bin/jobrun"):
                        out.append(words[i + 1:])
                        break
    return out


def test_readme_shows_cli_commands() -> None:
    assert len(cli_commands()) >= 15


@pytest.mark.parametrize("args", cli_commands(), ids=lambda a: " ".join(a[:2]))
def test_every_cli_command_shown_exists(args: list[str]) -> None:
    sub = [a for a in args[:2] if not a.startswith("-")]
    if len(sub) == 2 and sub[0] != "cron":
        sub = sub[:1]  # the second word is an argument (a task, an id, a queue)
    r = subprocess.run([*JOBRUN, *sub, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"`jobrun {' '.join(sub)}` does not exist: {r.stderr}"
    opts = [a.split("=")[0] for a in args if a.startswith("--")]
    for opt in opts:
        assert opt in r.stdout, f"`jobrun {' '.join(sub)}` has no option {opt}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme_cmd = next(b for b in blocks("sh") if "pytest" in b).strip()
    install, _, _test = readme_cmd.partition(" && .venv/bin/python -m pytest")
    assert install.strip() in ci and ".venv/bin/python -m pytest -q" in ci
