"""Masking secret values: every occurrence of a revealed value becomes `***`.

Template errors (templates.py) and everything the executor stores about an attempt that used
secrets (output, error, logs) go through here. A value is masked as written and in the forms a
template or a receiver commonly turns it into, matched without regard to letter case (so
`ascii_downcase`, `ascii_upcase` and upper-case hex are covered too):

- JSON-escaped (`"` → `\\"`, and with `\\uXXXX` escapes), URL-encoded (`quote`, `quote_plus`), hex;
- base64 and base64url, with or without padding, also where the value is a part of a longer
  encoded text (`user:token` in a Basic header): for each of the three alignments the characters
  that depend on the value alone are masked;
- a JSON list of the value's characters or code points (`split("")`, `explode`): the whole list.

Encoded forms shorter than 8 characters are not masked (they would mask unrelated text); the value
itself always is. Texts are masked longest first, in one pass.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_ENCODED = 8


def secret_values(secrets: Mapping[str, Any] | Iterable[Any]) -> tuple[str, ...]:
    """The texts to mask for a `.secrets` mapping (its values) or for plain values, longest first."""
    items = secrets.values() if isinstance(secrets, Mapping) else secrets
    texts: set[str] = set()
    for item in items:
        text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        if text:
            texts.add(text)
            texts.update(e for e in encodings(text) if len(e) >= _MIN_ENCODED)
    return tuple(sorted(texts, key=len, reverse=True))


def encodings(text: str) -> set[str]:
    """The common encoded forms of `text` (see the module doc)."""
    raw = text.encode()
    forms = {json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(text)[1:-1], quote(text, safe=""),
             quote(text), quote_plus(text), raw.hex()} | _base64_forms(raw)
    forms.discard(text)
    return forms


def _base64_forms(raw: bytes) -> set[str]:
    """base64 of `raw` alone (padded or not) and, for each alignment of `raw` inside a longer
    text, the characters that depend on `raw` alone; each also in base64url."""
    full = base64.b64encode(raw).decode()
    forms = {full, full.rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        end = len(encoded) - (4 if (offset + len(raw)) % 3 else 0)
        forms.add(encoded[4 if offset else 0:end])
    return forms | {f.replace("+", "-").replace("/", "_") for f in forms}


@lru_cache(maxsize=256)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE)


def redact_text(text: str, values: tuple[str, ...]) -> str:
    if not values or not text:
        return text
    return _pattern(values).sub(MASK, text)


def redact_value(value: Any, values: tuple[str, ...]) -> Any:
    """A JSON value with every string (dict keys included) masked; `value` itself is not changed."""
    if not values:
        return value
    if isinstance(value, str):
        return redact_text(value, values)
    if isinstance(value, dict):
        return {redact_text(str(k), values): redact_value(v, values) for k, v in value.items()}
    if isinstance(value, list):
        spelled = _spelled_out(value)
        if spelled is not None and redact_text(spelled, values) != spelled:
            return MASK
        return [redact_value(item, values) for item in value]
    return value


def _spelled_out(items: list[Any]) -> str | None:
    """The text a list of single characters or of code points spells, or None for any other list."""
    if len(items) < 2:
        return None
    if all(isinstance(i, str) and len(i) == 1 for i in items):
        return "".join(items)
    if all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 0x110000 for i in items):
        return "".join(chr(i) for i in items)
    return None
