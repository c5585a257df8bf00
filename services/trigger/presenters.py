"""Records → the Port-compatible JSON shapes of docs/api.md. Epoch floats become ISO 8601 UTC strings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from libs.core import engine_logs
from libs.core.run import LogEntry, NodeProgress, NodeRun, Run, node_run_id
from libs.core.versioning import VersionRecord, WorkflowRecord
from libs.core.workspaces import split


def iso(epoch: float | None) -> str | None:
    """`1700000000.5` → `"2023-11-14T22:13:20.500Z"`; None (or a time no calendar holds) → None."""
    if epoch is None:
        return None
    try:
        moment = datetime.fromtimestamp(epoch, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- workflows ----------------------------------------------------------------------------------

def tags_of(record: WorkflowRecord, version: int) -> list[str]:
    return sorted(name for name, number in record.tags.items() if number == version)


def workflow(record: WorkflowRecord, shown: VersionRecord) -> dict[str, Any]:
    """The definition at `shown` plus the workflow's metadata. The definition's own `tags` (labels)
    stay as they are; the version tags are `versionTags`."""
    return {
        **shown.definition,
        "identifier": split(record.identifier)[1],
        "workspace": split(record.identifier)[0],
        "version": shown.version,
        "latestVersion": record.latest_version,
        "versionTags": dict(record.tags),
        "isDeleted": record.deleted,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "createdBy": record.created_by,
        "updatedBy": record.updated_by,
    }


def version_summary(record: WorkflowRecord, version: VersionRecord) -> dict[str, Any]:
    return {
        "version": version.version,
        "createdAt": iso(version.created_at),
        "createdBy": version.created_by,
        "tags": tags_of(record, version.version),
    }


def version_detail(record: WorkflowRecord, version: VersionRecord) -> dict[str, Any]:
    return {**version_summary(record, version), "definition": version.definition}


def tag(name: str, version: int) -> dict[str, Any]:
    return {"name": name, "version": version}


# ---- runs ---------------------------------------------------------------------------------------

def _progress(progress: NodeProgress) -> dict[str, Any]:
    shown: dict[str, Any] = {"state": progress.state, "attempt": progress.attempt}
    if progress.branch is not None:
        shown["branch"] = progress.branch
    return shown


def run(record: Run, node_runs: Sequence[NodeRun] | None = None) -> dict[str, Any]:
    """A `workflowRun`; `nodeRuns` only when `node_runs` is given (the list view leaves them out)."""
    shown: dict[str, Any] = {
        "identifier": record.id,
        "workflowIdentifier": split(record.workflow)[1],
        "workflow": {"identifier": split(record.workflow)[1], "version": record.version},
        "workspace": split(record.workflow)[0],
        "workflowVersionId": record.version,
        "status": "QUEUED" if record.queued and record.status != "COMPLETED" else record.status,
        "result": record.result,
        "error": record.error,
        "trigger": {"type": record.trigger.type, "by": record.trigger.by,
                    "at": iso(record.trigger.at), "node": record.trigger.node, "event": record.trigger.event},
        "inputs": record.inputs,
        "variables": {"outputs": record.outputs},
        "nodes": {node_id: _progress(p) for node_id, p in record.nodes.items()},
        "createdBy": record.trigger.by,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "completedAt": iso(record.completed_at),
    }
    if record.parent_run_id is not None:
        shown["parentRunIdentifier"] = record.parent_run_id
        shown["parentNodeRunIdentifier"] = node_run_id(record.parent_node_run_key or "")
    if record.rerun_of is not None:
        shown["rerunOf"] = {"identifier": record.rerun_of, "from": record.rerun_from}
    if record.cancel_requested:
        shown["cancelledBy"] = record.cancelled_by
    if node_runs is not None:
        shown["nodeRuns"] = [node_run(n) for n in node_runs]
    return shown


def accepted_run(run_id: str, workflow_id: str, version: int) -> dict[str, Any]:
    """What `POST .../runs` answers when the scheduler has not inserted the run in time (202)."""
    return {"identifier": run_id, "workflowIdentifier": split(workflow_id)[1], "workflowVersionId": version,
            "status": "IN_PROGRESS", "result": None}


def _log(entry: LogEntry) -> dict[str, Any]:
    return {"logLevel": entry.logLevel, "log": entry.log, "tags": entry.tags, "createdAt": iso(entry.createdAt),
            "source": entry.source}


def node_run(record: NodeRun) -> dict[str, Any]:
    shown = _node_run_fields(record)
    if record.branch is not None:
        shown["branch"] = record.branch
    return shown


def _node_run_fields(record: NodeRun) -> dict[str, Any]:
    return {
        "identifier": record.id,
        "workflowRunIdentifier": record.run_id,
        "node": {"identifier": record.node_id},
        "nodeIdentifier": record.node_id,
        "nodeConfigType": record.node_type,
        "nodeTitle": record.title,
        "nodeIcon": record.icon,
        "attempt": record.attempt,
        "status": "COMPLETED" if record.status == "COMPLETED" else "IN_PROGRESS",
        "state": record.status,
        "result": record.result,
        "output": {} if record.output is None else record.output,
        "error": record.error,
        "nodeRunLogs": [_log(entry) for entry in engine_logs.shown(record)],
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "startedAt": iso(record.started_at),
        "completedAt": iso(record.completed_at),
    }
