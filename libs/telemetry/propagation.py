"""W3C trace context (`traceparent`) carried in message headers, without an OpenTelemetry dependency.

A `traceparent` is `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`
(https://www.w3.org/TR/trace-context/#traceparent-header).

The bus sets `current` while a handler runs, to the `traceparent` of the message being handled, so
that what the handler publishes continues the same trace (`outgoing_traceparent`: same trace id, a
new span id). Outside a handler each publish starts a new trace.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

TRACEPARENT: Final = "traceparent"
_VERSION: Final = "00"
_SAMPLED: Final = "01"
_PATTERN: Final = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16

Headers = list[tuple[str, bytes]]

current: contextvars.ContextVar[str | None] = contextvars.ContextVar("stepline_traceparent", default=None)


def new_traceparent() -> str:
    """A traceparent that starts a new, sampled trace."""
    return f"{_VERSION}-{_nonzero_hex(16)}-{_nonzero_hex(8)}-{_SAMPLED}"


def child_traceparent(parent: str) -> str:
    """A traceparent in `parent`'s trace with a new span id; a new trace if `parent` is invalid."""
    match = _PATTERN.match(parent)
    if match is None or match.group(1) == _ZERO_TRACE or match.group(2) == _ZERO_SPAN:
        return new_traceparent()
    return f"{_VERSION}-{match.group(1)}-{_nonzero_hex(8)}-{match.group(3)}"


def is_valid(traceparent: str) -> bool:
    match = _PATTERN.match(traceparent)
    return match is not None and match.group(1) != _ZERO_TRACE and match.group(2) != _ZERO_SPAN


def outgoing_traceparent(explicit: str | None = None) -> str:
    """What to send: `explicit` if valid, else a child of the current context's, else a new trace."""
    if explicit is not None and is_valid(explicit):
        return explicit
    parent = current.get()
    return child_traceparent(parent) if parent is not None else new_traceparent()


def traceparent_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> str | None:
    """The valid `traceparent` among Kafka-style `(name, value)` headers, if any."""
    for name, value in headers or ():
        if name.lower() == TRACEPARENT:
            text = value.decode("ascii", errors="replace").strip().lower()
            return text if is_valid(text) else None
    return None


def traceparent_header(traceparent: str) -> tuple[str, bytes]:
    return (TRACEPARENT, traceparent.encode("ascii"))


@contextmanager
def continuing(traceparent: str | None) -> Iterator[None]:
    """Make `traceparent` the current one for the duration of the block."""
    token = current.set(traceparent)
    try:
        yield
    finally:
        current.reset(token)


def _nonzero_hex(size: int) -> str:
    while True:
        value = os.urandom(size)
        if any(value):
            return value.hex()
