"""The config's problems collected as it is read, each with its file, key and line, so that
`jobrun check` reports them all in one pass and `load` the first."""

from __future__ import annotations

import re
from typing import Any

from .errors import ConfigError
from .settings import BOUNDS, WHY, duration, human


class Reader:
    """Collects problems with their key paths and lines instead of stopping at the first."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.problems: list[ConfigError] = []

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """Best effort: the line of `key =` under the table header of `path`."""
        if not path:
            return None
        *table, key = path
        start = 0
        def index(p: str) -> bool:  # an array index (our own, ASCII), not a "²" table name
            return p.isascii() and p.isdigit()

        header = ".".join(p for p in table if not index(p))
        if header:
            pat = re.compile(r"^\s*\[\[?\s*" + re.escape(header) + r"\s*\]\]?\s*(#.*)?$")
            nth = int(table[-1]) if table and index(table[-1]) else 0
            hits = [i for i, line in enumerate(self.lines) if pat.match(line)]
            if len(hits) > nth:
                start = hits[nth]
            elif not hits:
                return None
        keypat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for i in range(start, len(self.lines)):
            if i > start and header and self.lines[i].lstrip().startswith("["):
                break
            if keypat.match(self.lines[i]):
                return i + 1
        return start + 1 if header else None

    def bad(self, path: tuple[str, ...], reason: str) -> None:
        key = ".".join(path)
        self.problems.append(ConfigError(reason, file=self.file, key=key or None,
                                         line=self.line_of(path)))

    def take(self, table: dict[str, Any], path: tuple[str, ...], key: str, kind: type | tuple[type, ...],
             default: Any = None) -> Any:
        if key not in table:
            return default
        value = table[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and bool not in
                                              (kind if isinstance(kind, tuple) else (kind,)))
        if not ok:
            names = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            self.bad(path + (key,), f"must be {names}, not {type(value).__name__} {value!r}")
            return default
        return value

    def dur(self, table: dict[str, Any], path: tuple[str, ...], key: str,
            default: float | None) -> float | None:
        """A duration within BOUNDS[key]; out of bounds is a problem and gives the default."""
        if key not in table:
            return default
        try:
            seconds = duration(table[key])
        except ValueError as exc:
            self.bad(path + (key,), str(exc))
            return default
        least, most = BOUNDS[key]
        if not least <= seconds <= most:
            side = f"at least {human(least)}" if seconds < least else f"at most {human(most)}"
            given = f"{table[key]!r}" + ("" if table[key] == human(seconds)
                                         else f" ({human(seconds)})")
            self.bad(path + (key,), f"{key} {given} must be {side} ({WHY[key]})")
            return default
        return seconds

    def unknown(self, table: dict[str, Any], path: tuple[str, ...], known: set[str]) -> None:
        for k in table:
            if k not in known:
                hint = ", ".join(sorted(known))
                self.bad(path + (k,), f"unknown key {k!r} (known here: {hint})")
