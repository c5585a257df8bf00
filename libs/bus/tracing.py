"""Optional OpenTelemetry spans for `KafkaBus`, on top of the W3C `traceparent` it already carries.

When `opentelemetry-api` is importable and the application configured an SDK tracer provider:
- each publish is a PRODUCER span `publish <topic>`, a child of the current trace context (the record
  being handled, see below), and the record's `traceparent` names that span;
- each handled record is a CONSUMER span `process <topic>`, a child of the record's `traceparent`, and
  while its handler runs the current trace context (`libs.telemetry.propagation.current`) names it, so
  what the handler publishes is its child.

So one run's trace reads: publish StartRun → process it → publish ExecuteNode → process it → publish
NodeResult → …, across every service process, in whatever backend the SDK exports to. Without the
package, or with the API's default no-op provider, nothing is recorded and the `traceparent` headers
are exactly what `libs.telemetry.propagation` makes on its own. Nothing here needs a collector.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from libs.contracts.envelope import Envelope
from libs.telemetry.propagation import continuing, current, is_valid, outgoing_traceparent
from libs.telemetry.spans import tracer

try:  # an optional dependency
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised only where the package is absent
    _trace = None  # type: ignore[assignment]

TRACER_NAME = "stepline.bus.kafka"


def _tracer() -> Any:
    """The tracer of the configured provider; None when untraced (libs/telemetry/spans.py)."""
    return tracer(TRACER_NAME)


def _parent_context(traceparent: str | None) -> Any:
    """An OpenTelemetry context whose remote parent is `traceparent` (None: a new trace)."""
    if _trace is None or traceparent is None or not is_valid(traceparent):
        return None
    _, trace_id, span_id, flags = traceparent.split("-")
    parent = _trace.SpanContext(trace_id=int(trace_id, 16), span_id=int(span_id, 16), is_remote=True,
                                trace_flags=_trace.TraceFlags(int(flags, 16)))
    return _trace.set_span_in_context(_trace.NonRecordingSpan(parent))


def _traceparent_of(span: Any) -> str:
    """Version 00 with the sampled flag only (trace-context level 1, as `libs.telemetry` writes it)."""
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 0x01:02x}"


def _attributes(topic: str, envelope: Envelope | None, system: str) -> dict[str, str]:
    attributes = {"messaging.system": system, "messaging.destination.name": topic}
    if envelope is not None:
        attributes |= {"messaging.message.id": envelope.id, "cloudevents.event_type": envelope.type,
                       "stepline.run_id": envelope.subject}
    return attributes


@contextmanager
def producing(topic: str, envelope: Envelope, explicit: str | None, *, system: str = "kafka") -> Iterator[str]:
    """The PRODUCER span of one publish; yields the `traceparent` to send. `system`: `memory` for
    the embedded bus, which links its messages the same way."""
    tracer = _tracer()
    if tracer is None:
        yield outgoing_traceparent(explicit)
        return
    parent = explicit if explicit is not None and is_valid(explicit) else current.get()
    with tracer.start_as_current_span(f"publish {topic}", context=_parent_context(parent),
                                      kind=_trace.SpanKind.PRODUCER,
                                      attributes=_attributes(topic, envelope, system)) as span:
        yield _traceparent_of(span) if span.is_recording() else outgoing_traceparent(explicit)


@contextmanager
def consuming(topic: str, group: str, envelope: Envelope, traceparent: str | None, *,
              system: str = "kafka") -> Iterator[None]:
    """The CONSUMER span of one handled record; the current trace context names it meanwhile."""
    tracer = _tracer()
    if tracer is None:
        with continuing(traceparent):
            yield
        return
    attributes = _attributes(topic, envelope, system) | {"messaging.consumer.group.name": group}
    with tracer.start_as_current_span(f"process {topic}", context=_parent_context(traceparent),
                                      kind=_trace.SpanKind.CONSUMER, attributes=attributes) as span:
        with continuing(_traceparent_of(span) if span.is_recording() else traceparent):
            yield
