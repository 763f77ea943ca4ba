"""Named SQL, read in one place: `-- name --` blocks of queries.sql, and schema.sql."""

from __future__ import annotations

import re
from importlib import resources

_HEAD = re.compile(r"^-- ([a-z_0-9]+) --$", re.M)


def read_sql(name: str) -> str:
    """A `.sql` file of this package."""
    return resources.files("jobrun.store").joinpath(name).read_text(encoding="utf-8")


def parse(text: str) -> dict[str, str]:
    parts = _HEAD.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        out[name] = body.strip()
    return out


SCHEMA: str = read_sql("schema.sql")
Q: dict[str, str] = parse(read_sql("queries.sql"))
