"""One HTTP request whose response body is streamed and cut at a limit, never buffered whole: a
target answering 400 MiB costs at most `limit` bytes of memory (WEBHOOK, NOTIFY)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from libs.core import engine_logs
from libs.telemetry import spans
from services.executor import attempt_log


@dataclass(frozen=True)
class Received:
    status: int
    body: bytes
    """At most `limit` bytes of the (decoded) body."""
    truncated: bool
    """The body went on past `limit`; the rest was not read."""
    headers: httpx.Headers = field(default_factory=httpx.Headers)


async def request(client: httpx.AsyncClient, method: str, url: str, *, limit: int, **kwargs: Any) -> Received:
    """httpx errors propagate as from `client.request`. The request is `observed`."""
    return await observed(method, url, lambda: _read(client, method, url, limit=limit, **kwargs),
                          lambda received: received.status)


T = TypeVar("T")


async def observed(method: str, url: str, send: Callable[[], Awaitable[T]], status_of: Callable[[T], int]) -> T:
    """`send()` one request. Inside a node attempt it is an engine log line (method, URL without
    secrets, status, duration) and, when traced, a CLIENT span under the attempt's; outside
    (the notifier) and untraced it is just the call."""
    if not attempt_log.active() and spans.tracer() is None:
        return await send()
    began, started = time.time(), time.perf_counter()
    with spans.http_request(method, engine_logs.url_without_secrets(url)) as span:
        try:
            answer = await send()
        except BaseException as exc:  # a cancelled request (the attempt timed out) is logged too
            attempt_log.add(engine_logs.request_sent(method, url, None, time.perf_counter() - started, began,
                                                     failure=type(exc).__name__))
            spans.failed(span, type(exc).__name__)
            raise
        status = status_of(answer)
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                spans.failed(span, f"HTTP {status}")
    attempt_log.add(engine_logs.request_sent(method, url, status, time.perf_counter() - started, began))
    return answer


async def _read(client: httpx.AsyncClient, method: str, url: str, *, limit: int, **kwargs: Any) -> Received:
    async with client.stream(method, url, **kwargs) as response:
        chunks: list[bytes] = []
        size, truncated = 0, False
        body = response.aiter_bytes()
        async for chunk in body:
            kept = chunk[: limit - size]
            chunks.append(kept)
            size += len(kept)
            if size >= limit:
                truncated = len(chunk) > len(kept) or await _more(body)
                break
        return Received(response.status_code, b"".join(chunks), truncated, response.headers)


async def _more(body: AsyncIterator[bytes]) -> bool:
    """Whether the body goes on (the limit fell exactly at the end of a chunk); reads one chunk more."""
    async for chunk in body:
        if chunk:
            return True
    return False
