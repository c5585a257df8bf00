"""One HTTP request whose response body is streamed and cut at a limit, never buffered whole: a
target answering 400 MiB costs at most `limit` bytes of memory (WEBHOOK, NOTIFY)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Received:
    status: int
    body: bytes
    """At most `limit` bytes of the (decoded) body."""
    truncated: bool
    """The body went on past `limit`; the rest was not read."""


async def request(client: httpx.AsyncClient, method: str, url: str, *, limit: int, **kwargs: Any) -> Received:
    """httpx errors propagate as from `client.request`."""
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
        return Received(response.status_code, b"".join(chunks), truncated)


async def _more(body: AsyncIterator[bytes]) -> bool:
    """Whether the body goes on (the limit fell exactly at the end of a chunk); reads one chunk more."""
    async for chunk in body:
        if chunk:
            return True
    return False
