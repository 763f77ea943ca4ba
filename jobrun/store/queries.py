"""Named SQL, read in one place: `-- name --` blocks of queries.sql, and schema.sql."""

from __future__ import annotations

import os
import re

_HEAD = re.compile(r"^-- ([a-z_0-9]+) --$", re.M)


def read_sql(name: str) -> str:
    """A `.sql` file of this package: beside this module, else through importlib.resources
    (a zipped install); importlib.resources is 1 MB resident that a service need not hold."""
    try:
        with open(os.path.join(os.path.dirname(__file__), name), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        from importlib import resources

        return resources.files("jobrun.store").joinpath(name).read_text(encoding="utf-8")


def parse(text: str) -> dict[str, str]:
    parts = _HEAD.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        out[name] = body.strip()
    return out


SCHEMA: str = read_sql("schema.sql")
Q: dict[str, str] = parse(read_sql("queries.sql"))
