"""Pure constructors for what the scheduler writes and publishes."""

from __future__ import annotations

from libs.contracts import from_store, v1
from libs.core.definition import Workflow
from libs.core.limits import json_size
from libs.core.run import LogEntry, NodeRun, Run, node_run_id, node_run_key


def new_node_run(workflow: Workflow, run: Run, node_id: str, attempt: int, now: float) -> NodeRun:
    key = node_run_key(run.id, node_id, attempt)
    node = workflow.node(node_id)
    return NodeRun(key=key, id=node_run_id(key), run_id=run.id, workflow=run.workflow,
                   node_id=node_id, attempt=attempt, node_type=node.type, title=node.title,
                   icon=node.icon, max_attempts=node.max_attempts, created_at=now, updated_at=now)


def trigger_node_run(workflow: Workflow, run: Run) -> NodeRun:
    """The firing trigger's node run: completed at once, its output the run inputs (or what the
    trigger's `variables` made of them)."""
    output = run.trigger_output if run.trigger_output is not None else run.inputs
    return _succeeded_at_once(workflow, run, run.trigger.node, run.created_at, output=output)


def reused_node_run(workflow: Workflow, run: Run, node_id: str, earlier: NodeRun) -> NodeRun:
    """A node's success carried over from `earlier` (a rerun from `failed`): completed at once."""
    note = LogEntry(logLevel="INFO", log=f"reused the output of node run {earlier.id} of run {earlier.run_id}",
                    createdAt=run.updated_at, source="engine")
    return _succeeded_at_once(workflow, run, node_id, run.updated_at, output=earlier.output, branch=earlier.branch,
                              logs=[note])


def _succeeded_at_once(workflow: Workflow, run: Run, node_id: str, at: float, **fields: object) -> NodeRun:
    """A node run stored as succeeded when it is made: no executor performs it (no `max_attempts`,
    so no attempt-started line is shown for it)."""
    record = new_node_run(workflow, run, node_id, 1, at)
    return record.model_copy(update={"status": "COMPLETED", "result": "SUCCESS", "max_attempts": None,
                                     "started_at": at, "completed_at": at, **fields})


INLINE_OUTPUTS_MAX_BYTES = 64 * 1024


def execute_command(run: Run, node_id: str, attempt: int) -> v1.ExecuteNode:
    return v1.ExecuteNode(run_id=run.id, workflow=run.workflow, version=run.version, node_id=node_id,
                          attempt=attempt, node_run_key=node_run_key(run.id, node_id, attempt),
                          context=inline_context(run))


def inline_context(run: Run) -> v1.RunContext | None:
    """The run's variables, unless they are too large to travel in a message."""
    if json_size(run.outputs) + json_size(run.inputs) > INLINE_OUTPUTS_MAX_BYTES:
        return None
    return from_store.run_context(run)

