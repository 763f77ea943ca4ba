"""Strict JSON in and out: payloads are data, never objects. No pickle anywhere."""

from __future__ import annotations

import json
import math
import re
import reprlib
from typing import Any

from .errors import InvalidJob

_decoder = json.JSONDecoder()


def _refuse(value: Any) -> Any:
    raise InvalidJob(
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


#: Where json wrote a key it converted from an int, float, bool or None (`{1: "a"}` becomes
#: `{"1":"a"}`). A quote inside a string's text is escaped, so an unescaped `"` opens or
#: closes a string; after a closing one comes `,` `]` `}` or `:`, never this: a match is a
#: key. A str key of that shape ("1") matches too: the walk then finds nothing, text stands.
_CONVERTED_KEY = re.compile(r'"(?:-?[0-9][0-9.eE+-]*|true|false|null)":')


def _bad_key(value: Any) -> tuple[Any, str] | None:
    """The first dict key that is not a str, and the path to its dict (`[0]['a']`)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    seen: set[int] = set()  # a shared or cyclic container is walked once
    while stack:
        v, path = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, dict):
            for k in v:
                if not isinstance(k, str):
                    return k, path
            stack.extend((item, f"{path}[{k!r}]") for k, item in reversed(v.items())
                         if isinstance(item, (dict, list, tuple)))
        elif isinstance(v, (list, tuple)):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(v)))
                         if isinstance(item, (dict, list, tuple)))
    return None


def _key_error(value: Any, what: str) -> InvalidJob | None:
    found = _bad_key(value)
    if found is None:
        return None
    key, path = found
    return InvalidJob(f"{what}: dict key {reprlib.repr(key)} ({type(key).__name__}) "
                     f"{'at ' + path if path else 'at the top level'} is not a str; JSON "
                     "keys are strings, so it would not come back as it went in: use str keys")


def dumps(value: Any, what: str = "value") -> str:
    """Encode `value` as strict JSON or raise TypeError naming what is wrong with it.

    Dict keys must be str: json would silently turn `{1: "a"}` into `{"1": "a"}`, and the
    task would be called with something else than was enqueued."""
    try:
        if _fast is not None and not isinstance(value, str):
            text = "".join(_fast(value, 0))
        else:
            text = _encoder.encode(value)
        if not text.isascii():
            text.encode("utf-8")  # a lone surrogate cannot be stored as UTF-8
    except UnicodeEncodeError as exc:
        raise InvalidJob(f"{what}: contains text that is not valid Unicode "
                        f"({exc.reason}: {exc.object[exc.start:exc.end]!r})") from None
    except TypeError as exc:
        bad = _key_error(value, what) if str(exc).startswith("keys must be") else None
        raise bad or InvalidJob(f"{what}: {exc}") from None
    except ValueError as exc:
        msg = str(exc)
        if "Circular reference" in msg:
            raise InvalidJob(f"{what}: contains a reference cycle; JSON payloads must be trees") from None
        bad_key = _key_error(value, what) if "Out of range float" in msg else None
        if bad_key is not None:  # a NaN or infinite key
            raise bad_key from None
        bad = _find_bad_float(value)
        if bad is not None:
            raise InvalidJob(f"{what}: {bad!r} is not valid JSON (NaN and infinities are refused)") from None
        raise InvalidJob(f"{what}: {msg}") from None
    except RecursionError:
        try:
            cyclic = _has_cycle(value)
        except RecursionError:
            cyclic = False
        if cyclic:
            raise InvalidJob(f"{what}: contains a reference cycle; JSON payloads must be trees"
                            ) from None
        raise InvalidJob(f"{what}: nested too deeply to be a JSON payload") from None
    if '":' in text and _CONVERTED_KEY.search(text) is not None:
        bad_key = _key_error(value, what)
        if bad_key is not None:
            raise bad_key
    return text


def loads(text: str | None) -> Any:
    if text is None:
        return None
    return json.loads(text)


#: The most a job's arguments (or its result) may weigh as JSON: payloads are ids and small
#: data; a 50 MB argument was accepted once and made every read of its job slow.
MAX_PAYLOAD = 16 * 1024 * 1024


def bounded(text: str, what: str, limit: int = MAX_PAYLOAD) -> str:
    """`text`, or InvalidJob if it is over `limit` bytes (characters: close enough)."""
    if len(text) > limit:
        raise InvalidJob(f"{what}: {len(text) / 1048576:.1f} MiB of JSON, over jobrun's "
                         f"{limit // 1048576} MiB limit: pass ids, and keep the data elsewhere")
    return text
