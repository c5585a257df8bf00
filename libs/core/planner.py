"""The planner: pure functions from (definition, run state, outcome) to the next run state and the
effects the scheduler must carry out (dispatch node attempts, set timers).

Edge resolution (DESIGN §2, "Execution semantics"):
- an edge is unresolved while its source has not finished;
- after a success, a plain edge is taken; a CONDITION's edge is taken if it names the option chosen
  (or is the fallback and no option matched); error-branch edges (`onFailure: true`) are not taken;
- after a failure, error-branch edges are taken, plain edges only when the node has `onFailure:
  continue` (node or config), or timed out with `config.onTimeout: continue`; edges out of a skipped
  node are not taken.
A node becomes runnable when all its incoming edges are resolved and at least one is taken; if all
are resolved and none is taken it is SKIPPED (dead-path elimination), so a fan-in node runs once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from libs.core.definition import Connection, Node, Workflow
from libs.core.errors import SteplineError
from libs.core.graph import Graph
from libs.core.run import ACTIVE_NODE_STATES, NodeProgress, NodeState, Outcome, Run, TriggerInfo, can_move_node

FALLBACK = "__fallback__"


@dataclass(frozen=True)
class Dispatch:
    """Start attempt `attempt` of `node_id`: insert its node run, then publish ExecuteNode."""

    node_id: str
    attempt: int


@dataclass(frozen=True)
class RetryTimer:
    """Dispatch attempt `attempt` of `node_id` at `due_at`."""

    node_id: str
    attempt: int
    due_at: float
    reason: str | None = None
    """The error of the attempt that failed."""


@dataclass(frozen=True)
class TimeoutTimer:
    """Fail attempt `attempt` of `node_id` at `due_at` unless it completed by then."""

    node_id: str
    attempt: int
    due_at: float
    seconds: float


@dataclass(frozen=True)
class ReusedNode:
    """A node's success carried over from an earlier run (rerun from `failed`)."""

    output: Any
    branch: str | None = None


@dataclass
class Decision:
    run: Run
    dispatch: list[Dispatch] = field(default_factory=list)
    timers: list[RetryTimer] = field(default_factory=list)
    timeouts: list[TimeoutTimer] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    """Nodes that reached a final state in this step (for events)."""
    run_completed: bool = False


def start_run(workflow: Workflow, *, run_id: str, version: int, trigger: TriggerInfo,
              inputs: dict[str, Any], now: float, idempotency_key: str | None = None,
              reused: Mapping[str, ReusedNode] | None = None, base: Run | None = None) -> Decision:
    """A new run: the firing trigger node has succeeded with the inputs as its output; other
    triggers are skipped; nodes in `reused` have succeeded with their earlier output; whatever
    became runnable is dispatched. `base` is a stored queued run being admitted (its identity,
    links and creation time are kept)."""
    if base is not None:
        run = base.model_copy(update={"queued": False, "nodes": {}, "outputs": {}, "updated_at": now})
    else:
        run = Run(id=run_id, workflow=workflow.identifier, version=version, trigger=trigger, inputs=inputs,
                  idempotency_key=idempotency_key, created_at=now, updated_at=now)
    for node in workflow.triggers():
        fired = node.identifier == trigger.node
        _move(run, node.identifier, NodeProgress(state="SUCCEEDED" if fired else "SKIPPED"))
    run.outputs[trigger.node] = run.trigger_output if run.trigger_output is not None else inputs
    for node_id, reuse in (reused or {}).items():
        if node_id in run.nodes or not workflow.has_node(node_id):
            continue
        _move(run, node_id, NodeProgress(state="SUCCEEDED", branch=reuse.branch))
        run.outputs[node_id] = reuse.output
    decision = Decision(run=run, finished=[trigger.node])
    _advance(workflow, decision, now)
    return decision


def queued_run(workflow: Workflow, *, run_id: str, version: int, trigger: TriggerInfo,
               inputs: dict[str, Any], now: float, idempotency_key: str | None = None,
               trigger_output: dict[str, Any] | None = None) -> Run:
    """A run that waits for a concurrency slot: stored with its inputs, no node started."""
    return Run(id=run_id, workflow=workflow.identifier, version=version, trigger=trigger, inputs=inputs,
               trigger_output=trigger_output, idempotency_key=idempotency_key, created_at=now, updated_at=now,
               queued=True)


def cancel_run(workflow: Workflow, run: Run, *, stopped: Iterable[str], now: float,
               by: str | None) -> Decision | None:
    """Cancel: start nothing new; the nodes in `stopped` (PENDING or WAITING nodes whose node runs
    the caller has just cancelled) and every RETRY_WAIT node become CANCELLED; the run completes
    `CANCELLED` when no attempt is still in flight. None if the run is already completed."""
    if run.status == "COMPLETED":
        return None
    decision = Decision(run=_copy(run))
    decision.run.updated_at = now
    if not decision.run.cancel_requested:
        decision.run.cancel_requested = True
        decision.run.cancelled_by = by
    for node_id in stopped:
        progress = decision.run.nodes.get(node_id)
        if progress is not None and progress.state in ("PENDING", "WAITING"):
            _move(decision.run, node_id, NodeProgress(state="CANCELLED", attempt=progress.attempt))
            decision.finished.append(node_id)
    if run.queued:
        decision.run.queued = False
    _advance(workflow, decision, now)
    return decision


def apply_outcome(workflow: Workflow, run: Run, node_id: str, attempt: int, outcome: Outcome,
                  now: float) -> Decision | None:
    """Apply the outcome of attempt `attempt` of `node_id`. None when it is stale or a duplicate (the
    node is not PENDING/WAITING at that attempt), in which case the caller only re-ensures dispatches."""
    progress = run.nodes.get(node_id)
    if progress is None or progress.attempt != attempt:
        return None
    if progress.state not in ("PENDING", "WAITING") or run.status == "COMPLETED":
        return None
    if outcome.waiting and progress.state == "WAITING":
        return None
    decision = Decision(run=_copy(run))
    decision.run.updated_at = now
    if outcome.waiting:
        _move(decision.run, node_id, NodeProgress(state="WAITING", attempt=attempt))
        seconds = workflow.node(node_id).timeoutSeconds
        if seconds is not None:
            decision.timeouts.append(TimeoutTimer(node_id, attempt, now + seconds, seconds))
        return decision
    if outcome.result == "SUCCESS":
        _succeed(decision, node_id, attempt, outcome)
    else:
        _fail(workflow, decision, workflow.node(node_id), attempt, outcome, now)
    _advance(workflow, decision, now)
    return decision


def retry_due(workflow: Workflow, run: Run, node_id: str, attempt: int, now: float) -> Decision | None:
    """A retry timer fired: dispatch `attempt` if the node still waits for it. None if stale."""
    progress = run.nodes.get(node_id)
    if progress is None or progress.state != "RETRY_WAIT" or progress.attempt != attempt - 1:
        return None
    decision = Decision(run=_copy(run))
    decision.run.updated_at = now
    if decision.run.terminating or decision.run.cancel_requested:
        state: NodeState = "CANCELLED" if decision.run.cancel_requested else "FAILED"
        _move(decision.run, node_id, NodeProgress(state=state, attempt=progress.attempt))
        decision.finished.append(node_id)
    else:
        _move(decision.run, node_id, NodeProgress(state="PENDING", attempt=attempt))
        decision.dispatch.append(Dispatch(node_id, attempt))
    _advance(workflow, decision, now)
    return decision


class IllegalTransitionError(SteplineError):
    """The planner tried a node state change its state machine forbids: a bug, never retryable."""

    code = "illegal_transition"


def _move(run: Run, node_id: str, progress: NodeProgress) -> None:
    """Set a node's progress, enforcing `NODE_STATE_TRANSITIONS` (a retry re-enters PENDING with a
    new attempt)."""
    current = run.nodes.get(node_id)
    if current is not None and not can_move_node(current.state, progress.state):
        raise IllegalTransitionError(f"node {node_id!r} cannot move from {current.state} to {progress.state}")
    run.nodes[node_id] = progress


def _copy(run: Run) -> Run:
    """Copy what the planner changes: NodeProgress values are replaced, never mutated, and outputs
    are only added, so copying the two dicts is enough."""
    return run.model_copy(update={"nodes": dict(run.nodes), "outputs": dict(run.outputs)})


def _succeed(decision: Decision, node_id: str, attempt: int, outcome: Outcome) -> None:
    _move(decision.run, node_id, NodeProgress(state="SUCCEEDED", attempt=attempt, branch=outcome.branch))
    decision.run.outputs[node_id] = outcome.output
    decision.finished.append(node_id)


def _fail(workflow: Workflow, decision: Decision, node: Node, attempt: int, outcome: Outcome, now: float) -> None:
    run = decision.run
    can_retry = outcome.retryable and attempt < node.max_attempts
    if can_retry and not run.terminating and not run.cancel_requested and node.retry is not None:
        _move(run, node.identifier, NodeProgress(state="RETRY_WAIT", attempt=attempt))
        delay = node.retry.delay_before(attempt + 1)
        decision.timers.append(RetryTimer(node.identifier, attempt + 1, now + delay, outcome.error))
        return
    continues = node.continues_on_failure or (node.continues_on_timeout and is_timeout(outcome.error))
    handled = continues or _has_error_branch(workflow, node)
    _move(run, node.identifier, NodeProgress(
        state="FAILED", attempt=attempt, failure_handled=handled, continues=continues))
    run.outputs[node.identifier] = _failed_output(outcome)
    decision.finished.append(node.identifier)
    if not handled and not run.terminating:
        run.terminating = True
        run.error = f"node {node.identifier!r} failed: {outcome.error or 'no error message'}"


TIMED_OUT = "timed out after "
"""How every timeout's error starts (an attempt's, or a waiting node's): `onTimeout` recognises it."""


def timeout_error(seconds: float, detail: str = "") -> str:
    return f"{TIMED_OUT}{seconds:g}s{detail}"


def is_timeout(error: str | None) -> bool:
    return error is not None and error.startswith(TIMED_OUT)


def _failed_output(outcome: Outcome) -> Any:
    error = {"message": outcome.error or "failed"}
    if isinstance(outcome.output, dict):
        return {**outcome.output, "error": error}
    if outcome.output is None:
        return {"error": error}
    return {"output": outcome.output, "error": error}


def _has_error_branch(workflow: Workflow, node: Node) -> bool:
    return any(c.onFailure for c in Graph.of(workflow).outgoing.get(node.identifier, ()))


def _advance(workflow: Workflow, decision: Decision, now: float) -> None:
    """Resolve every node that can be resolved, in topological order, then decide completion."""
    run = decision.run
    graph = Graph.of(workflow)
    halted = run.terminating or run.cancel_requested
    if halted:
        _fail_waiting_retries(decision)
    for node_id in graph.topological_order():
        if node_id in run.nodes:
            continue
        states = [_edge_taken(workflow, run, c) for c in graph.incoming.get(node_id, ())]
        if not states or any(s is None for s in states):
            continue
        if any(states):
            if halted:
                continue
            _move(run, node_id, NodeProgress(state="PENDING", attempt=1))
            decision.dispatch.append(Dispatch(node_id, 1))
        else:
            _move(run, node_id, NodeProgress(state="SKIPPED"))
    _complete_if_done(decision, now)


def _fail_waiting_retries(decision: Decision) -> None:
    state: NodeState = "CANCELLED" if decision.run.cancel_requested else "FAILED"
    for node_id, progress in list(decision.run.nodes.items()):
        if progress.state == "RETRY_WAIT":
            _move(decision.run, node_id, NodeProgress(state=state, attempt=progress.attempt))
            decision.finished.append(node_id)


def _edge_taken(workflow: Workflow, run: Run, conn: Connection) -> bool | None:
    """True taken, False not taken, None unresolved."""
    source = run.nodes.get(conn.sourceIdentifier)
    if source is None or source.state in ACTIVE_NODE_STATES:
        return None
    if source.state == "SUCCEEDED":
        if conn.onFailure:
            return False
        if conn.sourceOptionIdentifier is not None:
            return conn.sourceOptionIdentifier == source.branch
        if conn.fallback:
            return source.branch == FALLBACK
        return True
    if source.state == "FAILED":
        if conn.onFailure:
            return True
        return source.continues or workflow.node(conn.sourceIdentifier).continues_on_failure
    return False


def _complete_if_done(decision: Decision, now: float) -> None:
    run = decision.run
    if run.status == "COMPLETED" or decision.dispatch:
        return
    if any(p.state in ACTIVE_NODE_STATES for p in run.nodes.values()):
        return
    run.status = "COMPLETED"
    run.completed_at = now
    if run.cancel_requested:
        run.result = "CANCELLED"
    elif run.terminating:
        run.result = "FAILED"
    else:
        run.result = "SUCCESS"
    decision.run_completed = True
