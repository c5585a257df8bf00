"""Run one service as its own process: adapters from settings, graceful shutdown on SIGTERM/SIGINT
(stop consuming, finish in-flight work, commit, close), and health endpoints."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from libs.bus.kafka.backoff import Backoff
from libs.bus.ports import Bus
from libs.core.errors import BusError, StoreUnavailableError
from libs.expressions import evaluate as expressions
from libs.runtime import heap
from libs.runtime.adapters import build_bus, build_store
from libs.runtime.service import Service
from libs.runtime.settings import CommonSettings
from libs.store.ports import Store
from libs.telemetry import metrics
from libs.telemetry.export import configure_tracing

log = logging.getLogger("stepline.runner")
Build = Callable[[Store, Bus], list[Service]]
AppFactory = Callable[[Store, Bus], FastAPI]


async def open_store(store: Store, *, attempts: int = 60) -> None:
    """Open the store, waiting for it to come up (a fresh deployment starts everything at once)."""
    for attempt in range(attempts):
        try:
            await store.open()
            return
        except StoreUnavailableError:
            if attempt == attempts - 1:
                raise
            log.warning("store not reachable yet; retrying")
            await asyncio.sleep(1.0)


async def start_bus(name: str, settings: CommonSettings, store: Store, build: Build, *,
                    attempts: int = 60) -> tuple[Bus, list[Service]]:
    """Build the bus and the services and start consuming, waiting for the broker to come up (or
    back: a broker restarting while a service starts must not end the service). A bus whose start
    failed cannot be started again, so each attempt stops it and builds a new bus and services.
    Attempts back off exponentially with jitter (0.25 s up to 2 s)."""
    backoff = Backoff(first=0.25, ceiling=2.0)
    for attempt in range(attempts):
        bus = build_bus(settings, client_id=f"stepline-{name}-{settings.instance_id}")
        services = build(store, bus)
        for service in services:
            service.register(bus)
        try:
            await bus.start()
            return bus, services
        except BusError:
            await bus.stop()
            if attempt == attempts - 1:
                raise
            log.warning("bus not reachable yet; retrying")
            await asyncio.sleep(backoff.failed())
    raise AssertionError("unreachable")


def health_app(store: Store) -> FastAPI:
    app = FastAPI(title="Stepline service health", openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = await store.ping()
        return JSONResponse({"ok": ready}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Every metric of this process, every workspace, without a key (keep the health port internal)."""
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    return app


async def run_service(name: str, settings: CommonSettings, build: Build, *, api: AppFactory | None = None,
                      host: str = "127.0.0.1", port: int = 0) -> None:
    """Run until SIGTERM or SIGINT. `api` serves the given app on host:port (the trigger);
    otherwise a health app listens on the settings' health port when one is set. Spans go to an
    OpenTelemetry collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (libs/telemetry/export.py)."""
    tracing = configure_tracing(name, os.environ)
    expressions.configure(settings.expression_limits())
    store = build_store(settings)
    await open_store(store)
    bus, services = await start_bus(name, settings, store, build)
    for service in services:
        service.start_loops()
    server = _server(store, bus, api, host, port, settings)
    heap.settle()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("%s started (bus %s, store %s)", name, settings.bus_url.split("://")[0], type(store).__name__)
    print(f"stepline {name} ready", flush=True)
    try:
        await _serve_until(stop, server)
    finally:
        await _shutdown(name, services, bus, store)
        if tracing is not None:
            tracing.shutdown()


KEEP_ALIVE_SECONDS = 30
"""How long an idle HTTP connection stays open. Longer than the 5 s after which common clients
(httpx, urllib3) stop reusing one, so a client never sends a request on a connection the server is
closing at that moment (a read error on the client, its request lost)."""


def server_config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    """The one HTTP server configuration (the services' API or health port, and embedded mode)."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                          timeout_keep_alive=KEEP_ALIVE_SECONDS)


def _server(store: Store, bus: Bus, api: AppFactory | None, host: str, port: int,
            settings: CommonSettings) -> uvicorn.Server | None:
    if api is not None:
        app, bind_host, bind_port = api(store, bus), host, port
    elif settings.health_port:
        app, bind_host, bind_port = health_app(store), settings.health_host, settings.health_port
    else:
        return None
    config = server_config(app, bind_host, bind_port)
    # uvicorn captures SIGTERM/SIGINT while serving and re-raises them when it returns, which then
    # reaches the asyncio handlers installed by run_service: shutdown stays graceful either way.
    return uvicorn.Server(config)


async def _serve_until(stop: asyncio.Event, server: uvicorn.Server | None) -> None:
    if server is None:
        await stop.wait()
        return
    serving = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await serving


async def _shutdown(name: str, services: list[Service], bus: Bus, store: Store) -> None:
    log.info("%s stopping: finishing in-flight work", name)
    await bus.stop()
    for service in services:
        await service.finish()
        await service.stop_loops()
    await store.close()
    log.info("%s stopped", name)
