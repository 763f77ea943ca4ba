"""Strict JSON in and out: payloads are data, never objects. No pickle anywhere."""

from __future__ import annotations

import json
import math
from typing import Any

_decoder = json.JSONDecoder()


def _refuse(value: Any) -> Any:
    raise TypeError(
        f"{value!r} (type {type(value).__name__}) is not JSON-serialisable: "
        "pass ids and plain data (str, int, float, bool, None, list, dict)"
    )


_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_refuse)


def _make_fast() -> Any:
    """The C encoder, built once (JSONEncoder.encode builds one per call, the dominant cost
    of enqueue_many). No cycle markers (shared between threads they would misfire): a cycle
    ends in RecursionError, reported below. Falls back to the plain encoder if unavailable."""
    try:
        from json.encoder import (  # type: ignore[attr-defined]
            c_make_encoder,
            encode_basestring,
        )

        enc = c_make_encoder(None, _refuse, encode_basestring, None, ":", ",", False, False,
                             False)
        if "".join(enc([1, "é", {"a": None}], 0)) != '[1,"é",{"a":null}]':
            return None
        return enc
    except Exception:
        return None


_fast = _make_fast()


def _has_cycle(value: Any, seen: set[int] | None = None, depth: int = 0) -> bool:
    if depth > 10_000:
        return False
    if not isinstance(value, (list, tuple, dict)):
        return False
    seen = seen if seen is not None else set()
    if id(value) in seen:
        return True
    seen.add(id(value))
    items = value.values() if isinstance(value, dict) else value
    found = any(_has_cycle(v, seen, depth + 1) for v in items)
    seen.discard(id(value))
    return found


def _find_bad_float(value: Any, depth: int = 0) -> Any:
    if depth > 200:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return value
    if isinstance(value, dict):
        for v in value.values():
            bad = _find_bad_float(v, depth + 1)
            if bad is not None:
                return bad
    elif isinstance(value, (list, tuple)):
        for v in value:
            bad = _find_bad_float(v, depth + 1)
            if bad is not None:
                return bad
    return None


def dumps(value: Any, what: str = "value") -> str:
    """Encode `value` as strict JSON or raise TypeError naming what is wrong with it."""
    try:
        if _fast is not None and not isinstance(value, str):
            text = "".join(_fast(value, 0))
        else:
            text = _encoder.encode(value)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate cannot be stored as UTF-8
        return text
    except UnicodeEncodeError as exc:
        raise TypeError(f"{what}: contains text that is not valid Unicode "
                        f"({exc.reason}: {exc.object[exc.start:exc.end]!r})") from None
    except TypeError as exc:
        raise TypeError(f"{what}: {exc}") from None
    except ValueError as exc:
        msg = str(exc)
        if "Circular reference" in msg:
            raise TypeError(f"{what}: contains a reference cycle; JSON payloads must be trees") from None
        bad = _find_bad_float(value)
        if bad is not None:
            raise TypeError(f"{what}: {bad!r} is not valid JSON (NaN and infinities are refused)") from None
        raise TypeError(f"{what}: {msg}") from None
    except RecursionError:
        try:
            cyclic = _has_cycle(value)
        except RecursionError:
            cyclic = False
        if cyclic:
            raise TypeError(f"{what}: contains a reference cycle; JSON payloads must be trees"
                            ) from None
        raise TypeError(f"{what}: nested too deeply to be a JSON payload") from None


def loads(text: str | None) -> Any:
    if text is None:
        return None
    return json.loads(text)
