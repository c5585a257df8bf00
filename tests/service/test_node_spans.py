"""One trace per run in embedded mode, exported to memory by the OpenTelemetry SDK (no collector):
the API request that started the run is the root, its publish of StartRun below it, each node
attempt is a span under that with
`stepline.run_id`, `stepline.node_id` and `stepline.workflow`, and the attempt's outbound HTTP
request is that span's child, its URL without the query string. Skipped where the optional
`opentelemetry-sdk` is not installed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from tests.conftest import Target  # noqa: E402
from tests.service.test_embedded_runs import chain, create, run_to_end, webhook  # noqa: E402
from tests.span_recording import recorded_spans  # noqa: E402


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as memory:
        yield memory


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """`span`'s parent, its parent, … up to the root (every one must have been exported)."""
    chain_up: list[ReadableSpan] = []
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        chain_up.append(span)
    return chain_up


async def test_run_node_attempt_and_http_request_form_one_tree(api: httpx.AsyncClient, target: Target,
                                                                exporter: InMemorySpanExporter) -> None:
    definition = chain("traced", webhook("call", f"{target.base_url}/flaky/1/hook?token=s3cr3t",
                                         retry={"maxAttempts": 2, "initialIntervalSeconds": 0.01}),
                       {"identifier": "shape",
                        "config": {"type": "TRANSFORM", "expression": ".outputs.call.response.status"}})
    await create(api, definition)
    run = await run_to_end(api, "traced")
    assert run["result"] == "SUCCESS"
    run_id = run["identifier"]

    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    attempts = [s for s in spans
                if (s.attributes or {}).get("stepline.run_id") == run_id and s.name.startswith("node ")]
    assert sorted((s.name, (s.attributes or {}).get("stepline.attempt")) for s in attempts) == [
        ("node call", 1), ("node call", 2), ("node shape", 1)]
    for attempt in attempts:
        assert (attempt.attributes or {})["stepline.workflow"] == "traced"
        assert (attempt.attributes or {})["stepline.node_id"] in ("call", "shape")
        above = ancestors(attempt, by_id)
        assert above[-1].parent is None
        assert any(s.name == "publish stepline.run-commands.v1" and (s.attributes or {}).get("stepline.run_id")
                   == run_id for s in above), "the API's StartRun (in the request that started the run) is above"
    assert len({s.context.trace_id for s in attempts}) == 1, "one trace per run"

    requests = {s.parent.span_id: s for s in spans if s.name == "HTTP POST" and s.parent is not None}
    calls = {(s.attributes or {})["stepline.attempt"]: s for s in attempts if s.name == "node call"}
    failed, succeeded = requests[calls[1].context.span_id], requests[calls[2].context.span_id]
    assert (failed.attributes or {})["http.response.status_code"] == 503
    assert (succeeded.attributes or {})["http.response.status_code"] == 200
    assert (succeeded.attributes or {})["url.full"] == f"{target.base_url}/flaky/1/hook"
    assert failed.status.status_code is trace.StatusCode.ERROR and calls[1].status.status_code is trace.StatusCode.ERROR
    assert succeeded.kind is trace.SpanKind.CLIENT
    ours = [s for s in spans
            if s.instrumentation_scope is not None and s.instrumentation_scope.name.startswith("stepline")]
    assert [(s.name, s.attributes) for s in ours if "s3cr3t" in str(s.attributes)] == [], \
        "the query string stays out of Stepline's spans (the loopback target's own server spans show it)"
