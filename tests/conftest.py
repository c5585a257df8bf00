"""Shared fixtures: a real HTTP target server on loopback, and an embedded engine in-process."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

pytest_plugins = ["tests.infra_fixtures"]
"""Session fixtures that start real Kafka and FerretDB servers (`kafka_broker`, `mongo_url`)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """A scriptable HTTP server that records every request it receives."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Await until `count` requests to `path` have arrived; return them."""
        async def enough() -> list[dict[str, Any]]:
            async with self.arrived:
                await self.arrived.wait_for(lambda: self.hits[path] >= count)
            return [r for r in self.requests if r["path"] == path]
        return await asyncio.wait_for(enough(), timeout)


def target_app(target: Target) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def anything(path: str, request: Request) -> JSONResponse:
        try:
            raw = await request.body()
        except ClientDisconnect:
            raw = b""
        body = await request.json() if raw else None
        entry = {"path": "/" + path, "method": request.method, "body": body,
                 "headers": dict(request.headers), "query": dict(request.query_params)}
        async with target.arrived:
            target.requests.append(entry)
            target.hits["/" + path] += 1
            seen = target.hits["/" + path]
            target.arrived.notify_all()
        if path.startswith("slow/"):
            await asyncio.sleep(int(path.split("/")[1]) / 1000)
        return respond(path, seen, entry)

    return app


def respond(path: str, seen: int, entry: dict[str, Any]) -> JSONResponse:
    """`/slow/<ms>/...` answers after ms milliseconds; `/status/<code>` answers that code; `/flaky/<n>/...`
    fails with 503 the first n times; `/async/...` answers 202; anything else echoes the request."""
    parts = path.split("/")
    if parts[0] == "status":
        return JSONResponse({"status": int(parts[1])}, status_code=int(parts[1]))
    if parts[0] == "flaky" and seen <= int(parts[1]):
        return JSONResponse({"error": "try again", "attempt": seen}, status_code=503)
    if parts[0] == "async":
        return JSONResponse({"accepted": True}, status_code=202)
    return JSONResponse({"ok": True, "path": "/" + path, "method": entry["method"], "body": entry["body"], "attempt": seen})


@asynccontextmanager
async def serving(app: Any, *, lifespan: Literal["on", "off"] = "off") -> AsyncIterator[str]:
    """Serve an ASGI app on a free loopback port for the duration; yields its base URL. `lifespan="on"`
    for an app that starts its own tasks at start-up (an MCP server's session manager)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    async with serving(target_app(t)) as base_url:
        t.base_url = base_url
        yield t


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Any]:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    settings = EmbeddedSettings(data_dir=tmp_path / "data", stale_seconds=1.0, sweep_interval_seconds=0.2,
                                lease_seconds=5.0, partitions=4)
    eng = Engine(settings)
    await eng.start()
    yield eng
    await eng.stop()


@pytest.fixture
async def api(engine: Any) -> AsyncIterator[httpx.AsyncClient]:
    from tests.auth_helpers import auth_headers

    transport = httpx.ASGITransport(app=engine.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                 headers=auth_headers(engine)) as client:
        yield client
