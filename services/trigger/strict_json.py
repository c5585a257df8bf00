"""Strict JSON request bodies: RFC 8259 only (no NaN/Infinity, no numbers that overflow a double or
Python's digit limit, no unpaired surrogates) and at most `MAX_DEPTH` levels of nesting.

Anything else raises `json.JSONDecodeError`, which FastAPI reports as `json_invalid` (→ 400), so
values that could not be stored or rendered back never enter the system.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

MAX_DEPTH = 64
MAX_INT_DIGITS = 1000


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(text)


def _problem(value: Any) -> str | None:
    """Why a parsed body is refused (too deep, or a string that is not valid Unicode), or None.
    Walks the tree without recursion."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str) and not _is_unicode(item):
            return "a string holds an unpaired surrogate escape"
        if isinstance(item, (dict, list)) and level > MAX_DEPTH:
            return f"nesting deeper than {MAX_DEPTH} levels"
        if isinstance(item, dict):
            stack.extend((key, level) for key in item)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def strict_loads(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else f"nesting deeper than {MAX_DEPTH} levels"
        raise json.JSONDecodeError(reason, text, 0) from exc
    problem = _problem(value)
    if problem is not None:
        raise json.JSONDecodeError(problem, text, 0)
    return value


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = strict_loads(body)
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError("body is not UTF-8", "", exc.start) from exc
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose handlers see a `StrictJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
