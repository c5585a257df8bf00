"""The wire types borrow no stored record: each translation between them is written once
(libs/contracts/from_store.py) and loses nothing on the way there and back."""

from __future__ import annotations

import pytest

from libs.contracts import from_store, v1, wrap
from libs.contracts.envelope import Envelope
from libs.core.run import LogEntry, NodeRun


def node_run(**fields: object) -> NodeRun:
    base = NodeRun(key="wfr_1/a/2", id="wfnr_1", run_id="wfr_1", workflow="w", node_id="a", attempt=2)
    return base.model_copy(update=fields)


@pytest.mark.parametrize("record", [
    node_run(status="COMPLETED", result="SUCCESS", output={"n": 1}, branch="prod"),
    node_run(status="COMPLETED", result="FAILED", output=[1, 2], error="HTTP 503", retryable=True),
    node_run(status="WAITING", output={"resumeAt": 5.0}),
])
def test_a_stored_node_run_and_its_published_result_stand_for_the_same_outcome(record: NodeRun) -> None:
    published = Envelope.from_bytes(wrap(from_store.node_result(record), source="test").to_bytes()).message()
    assert isinstance(published, v1.NodeResult)
    assert published.outcome() == record.outcome()
    assert (published.node_id, published.attempt, published.node_run_key) == ("a", 2, "wfr_1/a/2")
    assert record.outcome().waiting is (record.status == "WAITING")


def test_log_lines_travel_and_come_back_as_the_same_entries() -> None:
    entries = (LogEntry(logLevel="WARN", log="disk 91%", tags={"host": "a"}, createdAt=3.5),
               LogEntry(logLevel="INFO", log="approved by ann", createdAt=4.0, source="engine"))
    command = v1.CompleteNode(run_id="wfr_1", node_run_key="wfr_1/a/1", logs=from_store.log_lines(entries))
    received = Envelope.from_bytes(wrap(command, source="test").to_bytes()).message()
    assert isinstance(received, v1.CompleteNode)
    assert from_store.log_entries(received.logs) == entries


def test_the_wire_log_line_has_every_field_of_the_stored_entry() -> None:
    """A field added to LogEntry and not to LogLine would be dropped on the way: this fails first."""
    assert set(v1.LogLine.model_fields) == set(LogEntry.model_fields)

