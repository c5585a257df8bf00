"""Optional OpenTelemetry spans of the engine's own work: one per node attempt (executor) and one per
outbound HTTP request of an action, its child.

Both are children of the current OpenTelemetry context, which the bus sets to the span of the
message being handled (`libs/bus/tracing.py`), so they join the run's trace. Without
`opentelemetry-api`, or with its default no-op provider (no SDK configured), `tracer()` is None and
each helper is one function call that yields None.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

try:  # an optional dependency
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised only where the package is absent
    _trace = None  # type: ignore[assignment]

TRACER_NAME = "stepline.engine"


def tracer(name: str = TRACER_NAME) -> Any:
    """The tracer of the configured provider; None when there is no package or only the API's
    default (no-op) provider, so that an untraced process pays nothing for spans. This runs on
    every publish and attempt: the provider found is remembered, since a process sets it once."""
    provider = _provider()
    if provider is None:
        return None
    found = _tracers.get(name)
    if found is None or found[0] is not provider:
        found = _tracers[name] = (provider, provider.get_tracer(name))
    return found[1]


_tracers: dict[str, tuple[Any, Any]] = {}


def _provider() -> Any:
    if _trace is None:
        return None
    if getattr(_trace, "_TRACER_PROVIDER", True) is None and not _PROVIDER_FROM_ENVIRONMENT:
        return None  # none set yet: the API's own check, without its read of the environment
    provider = _trace.get_tracer_provider()
    if isinstance(provider, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)):
        return None
    return provider


_PROVIDER_FROM_ENVIRONMENT = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
"""A provider named by the environment is loaded by the API on first use."""


def node_attempt(run_id: str, workflow: str, node_id: str, node_type: str, attempt: int) -> AbstractContextManager[Any]:
    """The INTERNAL span `node <node_id>` of one attempt, current while it runs; enters as it (or None)."""
    traced = tracer()
    if traced is None:
        return _UNTRACED
    attributes = {"stepline.run_id": run_id, "stepline.workflow": workflow, "stepline.node_id": node_id,
                  "stepline.node_type": node_type, "stepline.attempt": attempt}
    return traced.start_as_current_span(f"node {node_id}", attributes=attributes)  # type: ignore[no-any-return]


_UNTRACED: AbstractContextManager[None] = nullcontext()


@contextmanager
def http_request(method: str, url: str) -> Iterator[Any]:
    """The CLIENT span `HTTP <method>` of one request; `url` must already be free of secrets."""
    traced = tracer()
    if traced is None:
        yield None
        return
    attributes = {"http.request.method": method, "url.full": url}
    with traced.start_as_current_span(f"HTTP {method}", kind=_trace.SpanKind.CLIENT, attributes=attributes) as span:
        yield span


def failed(span: Any, error: str) -> None:
    """Mark `span` (None: untraced) as failed with `error` as its status description."""
    if span is not None and _trace is not None:
        span.set_status(_trace.Status(_trace.StatusCode.ERROR, error))
