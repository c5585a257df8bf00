"""Masking secret values: every occurrence of a revealed value becomes `***`.

Template errors (templates.py) and everything the executor stores about an attempt that used
secrets (output, error, logs) go through here. Values are replaced longest first, and also in their
JSON-escaped spelling, so a value quoted inside a JSON text is masked too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"


def secret_values(secrets: Mapping[str, Any] | Iterable[Any]) -> tuple[str, ...]:
    """The texts to mask for a `.secrets` mapping (its values) or for plain values, longest first."""
    items = secrets.values() if isinstance(secrets, Mapping) else secrets
    texts: set[str] = set()
    for item in items:
        text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        if text:
            texts.add(text)
            escaped = json.dumps(text, ensure_ascii=False)[1:-1]
            if escaped != text:
                texts.add(escaped)
    return tuple(sorted(texts, key=len, reverse=True))


def redact_text(text: str, values: tuple[str, ...]) -> str:
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_value(value: Any, values: tuple[str, ...]) -> Any:
    """A JSON value with every string (dict keys included) masked; `value` itself is not changed."""
    if not values:
        return value
    if isinstance(value, str):
        return redact_text(value, values)
    if isinstance(value, dict):
        return {redact_text(str(k), values): redact_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(item, values) for item in value]
    return value
