"""The pure PATCH decision: which node-run states a completion may apply to."""

from __future__ import annotations

import pytest

from libs.core.errors import ConflictError
from libs.core.run import NodeRun
from services.trigger.completion import Decision, Patch, decide


def record(status: str, result: str | None = None) -> NodeRun:
    return NodeRun(key="r/n/1", id="wfnr_x", run_id="r", workflow="w", node_id="n", status=status, result=result)


COMPLETE = Patch(status="COMPLETED", result="SUCCESS")


def test_running_synchronous_node_cannot_be_completed_from_outside() -> None:
    with pytest.raises(ConflictError, match="not waiting"):
        decide(record("RUNNING"), COMPLETE, asynchronous=False)


def test_running_asynchronous_node_can_be_completed_early() -> None:
    assert decide(record("RUNNING"), COMPLETE, asynchronous=True) is Decision.PUBLISH


def test_pending_node_cannot_be_completed_even_if_asynchronous() -> None:
    with pytest.raises(ConflictError):
        decide(record("PENDING"), COMPLETE, asynchronous=True)


def test_repeat_and_conflicting_completion() -> None:
    done = record("COMPLETED", "SUCCESS")
    assert decide(done, COMPLETE) is Decision.ALREADY_APPLIED
    with pytest.raises(ConflictError, match="different result"):
        decide(done, Patch(status="COMPLETED", result="FAILED"))


def test_progress_logs_without_entries_do_nothing() -> None:
    assert decide(record("WAITING"), Patch(status="IN_PROGRESS")) is Decision.NOTHING
