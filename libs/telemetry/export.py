"""Exporting spans from a service process to an OpenTelemetry collector.

When `OTEL_EXPORTER_OTLP_ENDPOINT` is set and the `otel` extra is installed (`opentelemetry-sdk` and
the OTLP/HTTP exporter), `configure_tracing` builds a tracer provider that batches spans to that
endpoint; the exporter reads the other standard `OTEL_EXPORTER_OTLP_*` variables itself. The Kafka bus
then records a PRODUCER span per publish and a CONSUMER span per handled message (libs/bus/tracing.py).
Without the endpoint, or without the extra, nothing is configured and tracing costs next to nothing.
Only `http/protobuf` is built in; `grpc` needs `opentelemetry-exporter-otlp-proto-grpc` installed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("stepline.telemetry")


def configure_tracing(service: str, env: Mapping[str, str], *, install: bool = True) -> Any | None:
    """The SDK tracer provider exporting this service's spans, or None when tracing is off. With
    `install`, it becomes the process's global provider. Call `.shutdown()` on it at exit to flush."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if not endpoint or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        exporter = _exporter(env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), endpoint)
    except ImportError as exc:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but tracing is off: %s (install stepline[otel])", exc)
        return None
    name = env.get("OTEL_SERVICE_NAME") or f"stepline-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if install:
        trace.set_tracer_provider(provider)
    log.info("exporting spans of %s over OTLP", name)
    return provider


def _exporter(protocol: str, endpoint: str) -> Any:
    """The OTLP span exporter for `protocol` (ImportError when its package is not installed)."""
    if protocol == "grpc":
        grpc = importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
        return grpc.OTLPSpanExporter(endpoint=endpoint)
    http = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    return http.OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
