"""JSON in and out of Redis, via orjson (fast; the hot path encodes several documents per job).

The wire format stays plain JSON, readable by any client.
"""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: "a"} -> {"1": "a"}, as the json module does

JSONDecodeError = orjson.JSONDecodeError


def dumps(data: Any) -> str:
    """Compact JSON text. Raises TypeError for what JSON cannot carry."""
    try:
        return orjson.dumps(data, option=_OPTIONS).decode()
    except orjson.JSONEncodeError as exc:
        raise TypeError(str(exc)) from None


def loads(text: str | bytes) -> Any:
    """Parse JSON text. Raises ValueError (JSONDecodeError) when it is not JSON."""
    return orjson.loads(text)


def dumps_sorted(data: Any) -> str:
    """dumps() with the keys of every object sorted: one text for equal data (digests)."""
    try:
        return orjson.dumps(data, option=_OPTIONS | orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError as exc:
        raise TypeError(str(exc)) from None
