"""A node attempt's outcome is one type (`libs.core.run.Outcome`) from the executor through the wire
to the planner and the store: what travels stands for what is stored, and loses nothing on the way."""

from __future__ import annotations

import pytest

from libs.contracts import from_store, v1, wrap
from libs.contracts.envelope import Envelope
from libs.core.run import LogEntry, NodeRun, Outcome


def node_run(**fields: object) -> NodeRun:
    base = NodeRun(key="wfr_1/a/2", id="wfnr_1", run_id="wfr_1", workflow="w", node_id="a", attempt=2)
    return base.model_copy(update=fields)


def travelled(message: v1.Message) -> v1.Message:
    return Envelope.from_bytes(wrap(message, source="test").to_bytes()).message()


@pytest.mark.parametrize("record", [
    node_run(status="COMPLETED", result="SUCCESS", output={"n": 1}, branch="prod"),
    node_run(status="COMPLETED", result="FAILED", output=[1, 2], error="HTTP 503", retryable=True),
    node_run(status="WAITING", output={"resumeAt": 5.0}),
])
def test_a_published_result_is_the_outcome_of_its_stored_node_run(record: NodeRun) -> None:
    published = travelled(from_store.node_result(record))
    assert isinstance(published, v1.NodeResult) and isinstance(published, Outcome)
    assert Outcome.model_validate(published.model_dump()) == record.outcome()
    assert (published.node_id, published.attempt, published.node_run_key) == ("a", 2, "wfr_1/a/2")
    assert record.outcome().waiting is (record.status == "WAITING")


def test_a_result_does_not_send_the_logs_the_store_keeps() -> None:
    entry = LogEntry(log="attempt 1 of 3 started", createdAt=1.0, source="engine")
    result = v1.NodeResult(run_id="wfr_1", node_id="a", attempt=1, node_run_key="wfr_1/a/1", result="SUCCESS",
                           logs=(entry,))
    assert "logs" not in result.model_dump()
    received = travelled(result)
    assert isinstance(received, v1.NodeResult) and received.logs == () and received.result == "SUCCESS"


def test_log_entries_of_a_completion_travel_unchanged() -> None:
    entries = [LogEntry(logLevel="WARN", log="disk 91%", tags={"host": "a"}, createdAt=3.5),
               LogEntry(logLevel="INFO", log="approved by ann", createdAt=4.0, source="engine")]
    received = travelled(v1.CompleteNode(run_id="wfr_1", node_run_key="wfr_1/a/1", logs=entries))
    assert isinstance(received, v1.CompleteNode) and received.logs == entries
