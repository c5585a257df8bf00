"""Describing a rendered config value in an error message, briefly and without echoing much of it."""

from __future__ import annotations

import json

_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
          float: "a number", type(None): "null"}


def describe(value: object) -> str:
    """`a string 'abc'`, `an object`, `null`: the kind, plus short scalars."""
    kind = _KINDS.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)) or value is None:
        return kind
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}"
