"""Deciding an APPROVAL node (pure): who may decide it, and the `CompleteNode` a decision becomes.

A waiting APPROVAL node run's output is its request (`assignees, message, deadline, onTimeout`), so
the check needs nothing but the node run. Approve completes it SUCCESS; reject completes it FAILED
with the error "rejected by <by>" (an error branch or `onFailure: continue` may take it from there).
Both outputs are `{decision, by, comment, payload}`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from libs.contracts import v1
from libs.core import engine_logs
from libs.core.errors import ConflictError, ForbiddenError
from libs.core.node_kinds import Completer, completed_by
from libs.core.run import NodeRun

KIND = "approval-decisions"
"""EntryStore kind: the first decision of each node run (insert-if-absent), keyed by node run key."""

Verdict = Literal["approve", "reject"]


@dataclass(frozen=True)
class Decision:
    decision: Verdict
    by: str
    comment: str | None = None
    payload: Any = None

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decider:
    """Who decides, from their API key, and whether they started the run."""

    user: str
    role: str
    started_the_run: bool = False
    may_self_approve: bool = False
    """The node says `allowSelfApproval: true`."""

    def is_assignee(self, assignees: list[Any]) -> bool:
        return self.user in assignees or f"role:{self.role}" in assignees


def check(node_run: NodeRun, decision: Decision, decider: Decider) -> None:
    """ConflictError unless the node run waits for a decision; ForbiddenError unless the decider is an
    assignee (by user, or by role written `role:<role>`) and, when approving a run they started, the
    node allows self-approval."""
    if node_run.node_type != "APPROVAL":
        raise ConflictError(f"node {node_run.node_id!r} is a {node_run.node_type} node, not an APPROVAL")
    if node_run.status == "COMPLETED":
        output = node_run.output if isinstance(node_run.output, dict) else {}
        earlier = output.get("decision")
        how = f": {earlier}" + (f" by {output.get('by')}" if output.get("by") else "") if earlier else ""
        raise ConflictError(f"approval node {node_run.node_id!r} was already decided{how}")
    if node_run.status != "WAITING":
        raise ConflictError(f"approval node {node_run.node_id!r} is not waiting for a decision yet "
                            f"(its node run is {node_run.status})")
    request = node_run.output if isinstance(node_run.output, dict) else {}
    assignees = request.get("assignees")
    if not isinstance(assignees, list) or not decider.is_assignee(assignees):
        raise ForbiddenError(f"{decider.user!r} is not an assignee of approval node {node_run.node_id!r}")
    if decision.decision == "approve" and decider.started_the_run and not decider.may_self_approve:
        raise ForbiddenError(f"{decider.user!r} started this run and may not approve it "
                             f"(approval node {node_run.node_id!r} does not set allowSelfApproval)")


def complete_message(node_run: NodeRun, decision: Decision, now: float = 0.0) -> v1.CompleteNode:
    """The completion, with an engine log line of the decision made at `now`."""
    output: dict[str, Any] = decision.as_data()
    logs = [engine_logs.approval_decided(decision.decision, decision.by, now)]
    if decision.decision == "approve":
        return v1.CompleteNode(run_id=node_run.run_id, node_run_key=node_run.key, result="SUCCESS",
                               output=output, by=decision.by, logs=logs)
    output["error"] = {"message": f"rejected by {decision.by}"}
    return v1.CompleteNode(run_id=node_run.run_id, node_run_key=node_run.key, result="FAILED",
                           output=output, by=decision.by, logs=logs)


def already_decided(node_run: NodeRun, earlier: dict[str, Any]) -> ConflictError:
    return ConflictError(f"approval node {node_run.node_id!r} was already decided: "
                         f"{earlier.get('decision')} by {earlier.get('by')}")


_MOVED_ON: dict[Completer, str] = {
    "decision": "decide it with POST /v1/workflows/runs/{run}/nodes/{node}/approval",
    "answer": "answer it with POST /v1/workflows/runs/{run}/nodes/{node}/input",
    "timer": "it completes when its delay ends",
    "child_runs": "it completes when its child runs complete",
}


def refuse_patch(node_run: NodeRun) -> None:
    """A node run the engine completes (`NodeKind.completed_by`) is not completed by a PATCH:
    an APPROVAL is decided by an assignee, a DELAY by its timer, child runs by their completion."""
    completer = completed_by(node_run.node_type)
    if completer is None or node_run.status == "COMPLETED":
        return
    how = _MOVED_ON[completer].format(run=node_run.run_id, node=node_run.node_id)
    raise ConflictError(f"node run {node_run.id} of a {node_run.node_type} node cannot be completed by a PATCH: {how}")
