"""OpenTelemetry spans of `KafkaBus` against a real broker, exported to memory (no collector): a
publish is a PRODUCER span named by the record's `traceparent`, handling it is a CONSUMER span child of
that one, and what the handler publishes continues the same trace as the consumer span's child.
Skipped where the optional `opentelemetry-sdk` is not installed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from libs.bus.kafka import KafkaBus  # noqa: E402
from libs.contracts import topics, v1, wrap  # noqa: E402
from libs.contracts.envelope import Envelope  # noqa: E402
from libs.telemetry.propagation import current  # noqa: E402
from tests.infra_fixtures import KafkaBroker  # noqa: E402
from tests.span_recording import recorded_spans  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as memory:
        yield memory


def _by_name(spans: tuple[ReadableSpan, ...], run_id: str) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans if (s.attributes or {}).get("stepline.run_id") == run_id}


async def test_publish_and_handling_are_linked_spans(kafka_broker: KafkaBroker, exporter: InMemorySpanExporter) -> None:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    seen: dict[str, Any] = {}
    done = asyncio.Event()
    bus = KafkaBus(kafka_broker.bootstrap, partitions=2, client_id="tracing-test")

    async def on_command(envelope: Envelope) -> None:
        if envelope.subject == run_id:
            seen["handler_traceparent"] = current.get()
            await bus.publish(topics.RUN_EVENTS, wrap(v1.RunCompleted(
                run_id=run_id, seq=1, at="2026-01-01T00:00:00.000Z", workflow="w", version=1, result="SUCCESS",
                duration_ms=5), source="test"))
            done.set()

    bus.subscribe(topics.RUN_COMMANDS, f"tracing-{uuid.uuid4().hex[:8]}", on_command)
    await bus.start()
    try:
        await bus.publish(topics.RUN_COMMANDS, wrap(v1.ReconcileRun(run_id=run_id), source="test"))
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await bus.stop()
    spans = _by_name(exporter.get_finished_spans(), run_id)
    publish, process = spans[f"publish {topics.RUN_COMMANDS}"], spans[f"process {topics.RUN_COMMANDS}"]
    child = spans[f"publish {topics.RUN_EVENTS}"]
    assert publish.kind is trace.SpanKind.PRODUCER and process.kind is trace.SpanKind.CONSUMER
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert child.parent is not None and child.parent.span_id == process.context.span_id
    assert {publish.context.trace_id, process.context.trace_id, child.context.trace_id} == {publish.context.trace_id}
    assert seen["handler_traceparent"] == f"00-{process.context.trace_id:032x}-{process.context.span_id:016x}-01"
    assert (process.attributes or {}).get("messaging.system") == "kafka"
