"""Config files for services that tests start: one writer, so every test app's config has
the same shape ([jobrun], then an optional [queues.default], then the test's own tables)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_config(folder: Path, *, imports: Sequence[str], name: str = "jobrun.toml",
                 store: str | Path = "jobs.db", shutdown_timeout: int | str | None = None,
                 jobrun: str = "", default_queue: Mapping[str, int] | None = None,
                 body: str = "") -> str:
    """Write `folder/name` and return its path.

    `store` is relative to the config's folder unless absolute. `shutdown_timeout` is
    written as a TOML number (int) or string ("5s"); `jobrun` holds more lines of the
    [jobrun] table; `default_queue` the keys of [queues.default] (none: no such table);
    `body` the tables after it ([queues.x], [tasks.x], [[cron]])."""
    lines = ["[jobrun]", f"store = {json.dumps(str(store))}",
             f"import = {json.dumps(list(imports))}"]
    if shutdown_timeout is not None:
        lines.append(f"shutdown_timeout = {json.dumps(shutdown_timeout)}")
    lines.append(jobrun)
    if default_queue is not None:
        lines.append("[queues.default]")
        lines.extend(f"{key} = {value}" for key, value in default_queue.items())
    path = folder / name
    path.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
    return str(path)
