"""Deciding an APPROVAL node (pure): who may decide, when, and the completion a decision becomes."""

from __future__ import annotations

from typing import Any

import pytest

from libs.core.errors import ConflictError, ForbiddenError
from libs.core.run import NodeRun
from services.trigger.approval import Decider, Decision, check, complete_message, refuse_patch

REQUEST = {"assignees": ["alice", "bob"], "message": "ok?", "deadline": None, "onTimeout": "fail"}


def node_run(status: str = "WAITING", node_type: str = "APPROVAL", output: Any = None) -> NodeRun:
    return NodeRun(key="wfr_1/gate/1", id="wfnr_1", run_id="wfr_1", workflow="w", node_id="gate",
                   node_type=node_type, status=status, output=REQUEST if output is None else output)


def test_an_assignee_decides_a_waiting_approval() -> None:
    check(node_run(), Decision("approve", "bob"), Decider("bob", "viewer"))
    approved = complete_message(node_run(), Decision("approve", "bob", "fine", {"n": 1}))
    assert (approved.result, approved.output) == ("SUCCESS", {"decision": "approve", "by": "bob",
                                                              "comment": "fine", "payload": {"n": 1}})
    rejected = complete_message(node_run(), Decision("reject", "alice"))
    assert rejected.result == "FAILED" and rejected.output["error"] == {"message": "rejected by alice"}


def test_a_stranger_is_forbidden() -> None:
    with pytest.raises(ForbiddenError, match="'mallory' is not an assignee"):
        check(node_run(), Decision("approve", "mallory"), Decider("mallory", "owner"))


@pytest.mark.parametrize(("record", "message"), [
    (node_run(status="RUNNING"), "not waiting for a decision yet"),
    (node_run(status="COMPLETED", output={"decision": "reject", "by": "bob"}), "already decided: reject by bob"),
    (node_run(node_type="WEBHOOK"), "is a WEBHOOK node, not an APPROVAL"),
])
def test_conflicts(record: NodeRun, message: str) -> None:
    with pytest.raises(ConflictError, match=message):
        check(record, Decision("approve", "alice"), Decider("alice", "viewer"))


def test_a_patch_cannot_complete_a_node_the_engine_completes() -> None:
    with pytest.raises(ConflictError, match="/v1/workflows/runs/wfr_1/nodes/gate/approval"):
        refuse_patch(node_run())
    with pytest.raises(ConflictError, match="delay ends"):
        refuse_patch(node_run(node_type="DELAY"))
    refuse_patch(node_run(node_type="WEBHOOK"))
    refuse_patch(node_run(status="COMPLETED"))


def test_an_assignee_role_decides_and_a_requester_approves_only_when_allowed() -> None:
    by_role = node_run(output={**REQUEST, "assignees": ["role:admin"]})
    check(by_role, Decision("approve", "ada"), Decider("ada", "admin"))
    with pytest.raises(ForbiddenError, match="not an assignee"):
        check(by_role, Decision("approve", "ed"), Decider("ed", "editor"))
    with pytest.raises(ForbiddenError, match="allowSelfApproval"):
        check(node_run(), Decision("approve", "bob"), Decider("bob", "viewer", started_the_run=True))
    check(node_run(), Decision("reject", "bob"), Decider("bob", "viewer", started_the_run=True))
    check(node_run(), Decision("approve", "bob"), Decider("bob", "viewer", started_the_run=True, may_self_approve=True))
