"""Say once, at the end of a run, that the PostgreSQL tests were skipped and how to run them
(a skip's reason alone is shown only with -rs)."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "PostgreSQL tests skipped" in str(getattr(r, "longrepr", ""))]
    if skipped:
        longrepr = skipped[0].longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        terminalreporter.write_line(f"{len(skipped)} {reason.removeprefix('Skipped: ')}",
                                    yellow=True)
