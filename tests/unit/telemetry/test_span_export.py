"""Span export to an OpenTelemetry collector: configured only by `OTEL_EXPORTER_OTLP_ENDPOINT`, and then
spans reach an OTLP/HTTP endpoint (a real loopback HTTP server standing in for the collector)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.telemetry.export import configure_tracing
from tests.conftest import serving

pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[tuple[str, bytes]]]]:
    received: list[tuple[str, bytes]] = []

    async def traces(request: Request) -> Response:
        received.append((request.headers.get("content-type", ""), await request.body()))
        return Response(status_code=200)

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    async with serving(app) as base_url:
        yield base_url, received


def test_no_endpoint_means_no_tracing() -> None:
    assert configure_tracing("scheduler", {}, install=False) is None
    assert configure_tracing("scheduler", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
                                           "OTEL_SDK_DISABLED": "true"}, install=False) is None


async def test_spans_reach_the_collector_with_the_service_name(
        collector: tuple[str, list[tuple[str, bytes]]]) -> None:
    endpoint, received = collector
    provider: Any = configure_tracing("executor", {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, install=False)
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span("stepline.node-dispatch.v1 process"):
        pass
    assert await asyncio.to_thread(provider.force_flush, 10_000)
    await asyncio.to_thread(provider.shutdown)
    assert len(received) == 1
    content_type, body = received[0]
    assert content_type == "application/x-protobuf"
    assert b"stepline-executor" in body and b"stepline.node-dispatch.v1 process" in body
