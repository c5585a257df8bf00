"""The JSON response class of the API: strict JSON out, even if a stored value holds NaN or Infinity."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by null (JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(content: Any) -> bytes:
    try:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        content = _finite(content)
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


class ApiJSONResponse(JSONResponse):
    """Like JSONResponse, but values read back from the store can never make rendering fail."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
