"""`store = "..."` under [jobrun], found by a line scan in a file that is not valid TOML.

Only for a producer whose config was broken by an edit: it still needs its store. The scan
reads only the forms it is sure of and reports a doubt otherwise, since a wrong guess would
enqueue where no service looks. No jobrun imports: config.py uses it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

_HEADER = re.compile(r"^\s*\[\[?(?P<name>[^\[\]#]*)\]\]?\s*(#.*)?$")
_KEY = r"""(?:store|"store"|'store')\s*=(?P<value>.*)$"""
_IN_JOBRUN = re.compile(r"^\s*" + _KEY)
_AT_ROOT = re.compile(r"""^\s*(?:jobrun|"jobrun"|'jobrun')\s*\.\s*""" + _KEY)
_JOBRUN_AT_ROOT = re.compile(r"""^\s*(?:jobrun|"jobrun"|'jobrun')\s*[.=]""")


@dataclass(frozen=True)
class Found:
    """The store as written (None: the file names none), its line, or why it is unsure."""

    value: str | None = None
    line: int | None = None
    doubt: str | None = None


def _table(name: str) -> str:
    """`[ jobrun ]`, `["jobrun"]` -> "jobrun"; dotted names joined without spaces."""
    return ".".join(p.strip().strip("\"'") for p in name.split("."))


def _string(text: str) -> str | None:
    """The TOML string value of the rest of a `key =` line (comment allowed), or None."""
    try:
        value = tomllib.loads("v =" + text).get("v")
    except tomllib.TOMLDecodeError:
        return None
    return value if isinstance(value, str) else None


def find_store(text: str) -> Found:
    table: str | None = ""  # "" is the root; None after a header that cannot be read
    quote: str | None = None  # inside a multi-line string opened with this delimiter
    hits: list[tuple[str, int]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if quote is not None:
            if line.count(quote) % 2:
                quote = None
            continue
        if line.lstrip().startswith("["):
            m = _HEADER.match(line)
            array = "[]" if line.lstrip().startswith("[[") else ""  # [[jobrun]] is not it
            table = array + _table(m.group("name")) if m else None
            continue
        key = (_IN_JOBRUN.match(line) if table in ("jobrun", "[]jobrun", None)
               else _AT_ROOT.match(line) if table == "" else None)
        if key is not None:
            if table != "" and table != "jobrun":  # a broken header, or [[jobrun]]
                return Found(line=n, doubt=f"the store line {n} is under a header that is "
                                          "not a readable [jobrun]")
            value = _string(key.group("value"))
            if value is None:
                return Found(line=n, doubt=f"the store line {n} is not a TOML string")
            hits.append((value, n))
        elif table == "" and _JOBRUN_AT_ROOT.match(line) and "store" in line:
            return Found(line=n, doubt=f"line {n} sets jobrun in a form this scan does not read")
        for q in ('"""', "'''"):
            if line.count(q) % 2:
                quote = q
                break
    if len(hits) > 1:
        lines = " and ".join(str(n) for _, n in hits)
        return Found(line=hits[1][1], doubt=f"store is set twice (lines {lines})")
    return Found(*hits[0]) if hits else Found()
