"""What both wire formats share: the error of an answer that is not the format's, and tolerant
readers of token counts and tool arguments."""

from __future__ import annotations

import json
from typing import Any


class MalformedReply(ValueError):
    """The provider answered 2xx with a body that is not a reply of its format."""


def integer(data: Any, key: str) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def arguments_object(raw: Any) -> dict[str, Any]:
    """A tool call's arguments as an object: OpenAI sends a JSON string, Anthropic an object. Text
    that is not a JSON object is kept as `{"_raw": text}` so the tool can report it."""
    if isinstance(raw, dict):
        return raw
    if raw is None or raw == "":
        return {}
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {"_raw": str(raw)}
    return parsed if isinstance(parsed, dict) else {"_raw": str(raw)}
