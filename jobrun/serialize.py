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
        return _encoder.encode(value)
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
        raise TypeError(f"{what}: nested too deeply to be a JSON payload") from None


def loads(text: str | None) -> Any:
    if text is None:
        return None
    return json.loads(text)
