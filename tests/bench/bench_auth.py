"""What authentication costs per request: the API key check of every `/v1` request, measured on the
real middleware and key store (SQLite), against the same request to an app without it.

    .venv/bin/python tests/bench/bench_auth.py [--requests N]

Rows: a request whose key was verified before (the hot path: a SHA-256 and a dict lookup, plus one
keyed store read per key every 0.5 s); the first request of a key (one scrypt); `ApiKeys.verify` alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from libs.access.keystore import ApiKeys  # noqa: E402
from libs.store.sqlite import SqliteStore  # noqa: E402
from services.trigger.authn import AuthenticationMiddleware  # noqa: E402


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def request(key: str) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/v1/workflows",
            "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {key}".encode())]}


async def per_call_us(call: Callable[[], Awaitable[None]], n: int) -> float:
    began = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - began) / n * 1e6


async def main(n: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        return None

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "db.sqlite"))
        await store.open()
        keys = ApiKeys(store)
        _, key = await keys.create(name="bench", workspace="default", role="owner", user="bench")
        guarded = AuthenticationMiddleware(ok, keys=keys)
        began = time.perf_counter()
        await guarded(request(key), receive, send)
        first_ms = (time.perf_counter() - began) * 1e3
        bare = await per_call_us(lambda: ok(request(key), receive, send), n)
        with_key = await per_call_us(lambda: guarded(request(key), receive, send), n)
        verify = await per_call_us(lambda: _verify(keys, key), n)
        await store.close()
    print(f"\nAuthentication cost — {n} requests, SQLite key store, one process\n")
    print(f"{'what':<44} {'per request':>12}")
    print(f"{'request without the middleware':<44} {bare:>9.1f} µs")
    print(f"{'request through it, key verified before':<44} {with_key:>9.1f} µs")
    print(f"{'added by authentication (target ≤ 200 µs)':<44} {with_key - bare:>9.1f} µs")
    print(f"{'ApiKeys.verify alone':<44} {verify:>9.1f} µs")
    print(f"{'first request of a key (scrypt)':<44} {first_ms * 1000:>9.0f} µs")


async def _verify(keys: ApiKeys, key: str) -> None:
    assert await keys.verify(key) is not None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().requests))
