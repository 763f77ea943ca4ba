"""What enqueue and `@app.task` refuse, in one place: pure checks that raise InvalidJob
(a TypeError).

- `bind`: arguments against the task function's signature (a missing, extra or unknown
  argument names itself and the task), cheap enough for `enqueue_many`: a signature is
  read once per function and a sound fast path settles the common calls without
  `inspect.Signature.bind`, which only runs to word the error.
- `integer`, `seconds`: numeric options. `bool` is an `int` to Python but never a number of
  attempts or seconds here, so `True` is refused like `"5"`.
- `text`: task names, queue names, keys and trace ids end up in log lines and terminals:
  printable text only (no control characters, no line or paragraph separators, no bidi
  overrides), bounded, and storable as UTF-8.
"""

from __future__ import annotations

import inspect
import math
import reprlib
import unicodedata
from collections.abc import Callable
from types import FunctionType
from typing import Any, Final

from .errors import InvalidJob

#: Longest task or queue name, and longest key (in characters).
NAME_LIMIT = 200
KEY_LIMIT = 1000

#: Priorities and counts fit a 32-bit int: the PostgreSQL columns are INTEGER, and a store
#: must not take on SQLite what the other refuses (out of range, mid-transaction).
_INT32 = 2 ** 31


# -- arguments ---------------------------------------------------------------------------------
class Binder:
    """A function's parameters, read once: `check(task, args, kwargs)` per enqueue."""

    __slots__ = (
        "accepted",
        "kwonly",
        "n_pos",
        "n_req",
        "names",
        "needed",
        "pos_names",
        "sig",
        "varargs",
        "varkw",
    )

    def __init__(self, sig: inspect.Signature) -> None:
        P = inspect.Parameter
        params = list(sig.parameters.values())
        pos = [p for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
        self.sig = sig
        self.pos_names = tuple(p.name for p in pos)
        #: positional-or-keyword name -> its position
        self.names = {p.name: i for i, p in enumerate(pos) if p.kind is P.POSITIONAL_OR_KEYWORD}
        self.n_pos = len(pos)
        # Parameters with defaults follow those without, so the required ones are a prefix.
        self.n_req = sum(1 for p in pos if p.default is P.empty)
        posonly = sum(1 for p in pos if p.kind is P.POSITIONAL_ONLY)
        self.varargs = any(p.kind is P.VAR_POSITIONAL for p in params)
        self.varkw = any(p.kind is P.VAR_KEYWORD for p in params)
        self.kwonly = frozenset(p.name for p in params if p.kind is P.KEYWORD_ONLY)
        #: the keyword names it takes (without **kwargs)
        self.accepted = frozenset(self.names) | self.kwonly
        kw_req = {p.name for p in params if p.kind is P.KEYWORD_ONLY and p.default is P.empty}
        #: given n positional arguments: the names that must come as keywords (None: a
        #: required positional-only parameter is missing whatever the keywords)
        self.needed: tuple[frozenset[str] | None, ...] = tuple(
            None if n < min(posonly, self.n_req) else
            frozenset(self.pos_names[n:self.n_req]) | kw_req
            for n in range(self.n_req + 1))

    def fits(self, args: Any, kwargs: Any) -> bool:
        """True only if `sig.bind(*args, **kwargs)` would succeed (False: ask it why)."""
        n = len(args)
        if n > self.n_pos and not self.varargs:
            return False
        needed = self.needed[n if n < self.n_req else self.n_req]
        if not kwargs:
            return needed is not None and not needed
        if needed is None or not needed <= kwargs.keys():
            return False
        if self.varkw:
            if not all(type(k) is str for k in kwargs):
                return False
        elif not kwargs.keys() <= self.accepted:
            return False  # unknown (or a positional-only name without **kwargs)
        if n:
            names = self.names
            for k in kwargs:
                i = names.get(k)
                if i is not None and i < n:
                    return False  # given twice
        return True

    def check(self, task: str, args: Any, kwargs: Any) -> None:
        if self.fits(args, kwargs):
            return
        try:
            self.sig.bind(*args, **kwargs)
        except TypeError as exc:
            msg = str(exc)
            if msg == "too many positional arguments":
                extra = ", ".join(reprlib.repr(a) for a in args[self.n_pos:])
                msg = (f"too many positional arguments: takes at most {self.n_pos}, "
                       f"given {len(args)} (extra: {extra})")
            # bind names a missing argument before an unknown one; a typo is the likelier
            # mistake, so name it first.
            unknown = [k for k in kwargs if k not in self.pos_names and k not in self.kwonly]
            if unknown and not self.varkw and "unexpected keyword" not in msg:
                msg = f"got an unexpected keyword argument {unknown[0]!r}, and {msg}"
            raise InvalidJob(f"{task}: {msg}") from None


_binders: dict[Callable[..., Any], Binder | None] = {}
_UNREAD: Final[Any] = object()


def binder(fn: Callable[..., Any]) -> Binder | None:
    """`fn`'s Binder, made once; None if its signature cannot be read (then nothing is
    checked: the call fails when it runs, as before)."""
    try:
        return _binders[fn]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable
        return _make(fn)
    b = _binders[fn] = _make(fn)
    return b


def _make(fn: Callable[..., Any]) -> Binder | None:
    try:
        return Binder(inspect.signature(fn))
    except (TypeError, ValueError):
        return None


def bind(fn: Callable[..., Any], task: str, args: Any, kwargs: Any) -> None:
    """Refuse arguments `fn` cannot be called with, naming the argument and the task."""
    b = _binders.get(fn, _UNREAD) if type(fn) is FunctionType else _UNREAD
    if b is _UNREAD:
        b = binder(fn)
    if b is not None and not b.fits(args, kwargs):
        b.check(task, args, kwargs)


# -- numbers -------------------------------------------------------------------------------------
def integer(value: Any, what: str, low: int = -_INT32, high: int = _INT32 - 1,
            kind: str = "a 32-bit int") -> int:
    """An int in [low, high]; not a bool, a float or a numeric string."""
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise InvalidJob(f"{what} must be {kind}, not {type(value).__name__} {reprlib.repr(value)}")
    if not low <= value <= high:
        raise InvalidJob(f"{what} must be {kind}, not {reprlib.repr(value)}")
    return int(value)


def positive(value: Any, what: str) -> int:
    """A count such as max_attempts: 1 up to 2**31 - 1."""
    return integer(value, what, 1, _INT32 - 1, "a positive 32-bit int")


def seconds(value: Any, what: str, low: float = 0.0, high: float = math.inf, *,
            above: bool = False, kind: str = "a number of seconds") -> float:
    """A finite int or float >= low (> low with `above`) and < high; not a bool."""
    t = type(value)
    if t is not float and t is not int and (isinstance(value, bool) or
                                            not isinstance(value, (int, float))):
        raise InvalidJob(f"{what} must be {kind}, not {t.__name__} {reprlib.repr(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int past the float range
        v = math.inf
    if not math.isfinite(v) or v < low or (above and v == low) or not v < high:
        raise InvalidJob(f"{what} must be {kind}, not {reprlib.repr(value)}")
    return v


# -- names and keys ------------------------------------------------------------------------------
#: Invisible characters that reorder the text around them (spoofed log lines, CVE-2021-42574).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REFUSED = {"Cc": "a control character", "Zl": "a line separator", "Zp": "a paragraph separator",
            "Cs": "a lone surrogate (not valid Unicode text)"}


def text(value: Any, what: str, limit: int = NAME_LIMIT, *, empty: bool = True) -> str:
    """A name or key: a str of at most `limit` characters of printable, storable text.

    Refused: control characters (newline, tab, ESC, DEL, C1), U+2028/U+2029, bidi
    controls, lone surrogates. Allowed: any other text, spaces and joiners included."""
    if type(value) is not str and not isinstance(value, str):
        raise InvalidJob(f"{what} must be a str, not {reprlib.repr(value)}")
    if len(value) > limit:
        raise InvalidJob(f"{what} {reprlib.repr(value)} is {len(value)} characters long: "
                        f"at most {limit}")
    if not value and not empty:
        raise InvalidJob(f"{what} must not be empty")
    if not value.isprintable():  # rare: look closer (isprintable also refuses NBSP, ZWJ)
        for i, ch in enumerate(value):
            why = _REFUSED.get(unicodedata.category(ch))
            if why is None and ch in _BIDI:
                why = "a bidirectional control"
            if why is not None:
                raise InvalidJob(f"{what} {reprlib.repr(value)} contains {why} "
                                f"(U+{ord(ch):04X}) at index {i}: names and keys must be "
                                "printable text")
    return value
