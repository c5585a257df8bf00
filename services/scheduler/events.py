"""The run events of one state change (docs/events.md), pure.

`stamp` runs before the store write of a decision: it numbers the change's events after the run's
earlier ones (`Run.event_seq`), records when each dispatched attempt started, and makes the run's
`outbox` the envelopes of the events not yet published (earlier ones this process has not relayed,
then the new ones), all in the run document that is written, so a decision re-made after a lost race
numbers its events the same way, an event's id `<runId>/<seq>` names one state change for good, and
the events are stored by the very write that makes the change (the scheduler relays them afterwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from libs.contracts import Envelope, v1
from libs.core.definition import Workflow
from libs.core.instants import to_iso
from libs.core.planner import Decision
from libs.core.run import Run, node_run_id, node_run_key
from libs.core.workspaces import split

Draft = tuple[type[v1.RunEvent], dict[str, Any]]
_RESULTS = {"SUCCEEDED": "SUCCESS", "CANCELLED": "CANCELLED"}
"""A finished node's result in its `node.completed` event, by its state (any other: FAILED)."""


def stamp(workflow: Workflow, before: Run | None, decision: Decision, now: float, *, source: str,
          sent_upto: int = 0) -> list[Envelope]:
    """The events from `before` (None: a run being inserted) to `decision.run`, which it stamps;
    outbox entries up to `sent_upto` are known to be published and are dropped. Returns the new
    events' envelopes from `source` (the outbox holds them as plain data)."""
    run = decision.run
    if decision.dispatch:
        run.node_started_at = {**run.node_started_at, **{d.node_id: now for d in decision.dispatch}}
    drafts = [*_opening(before, run), *_finished(workflow, decision, now), *_waiting(workflow, before, run),
              *_retrying(workflow, decision, now), *_started(workflow, decision), *_closing(run, decision)]
    first = run.event_seq + 1
    run.event_seq += len(drafts)
    common = _common(run, now)
    envelopes = [_envelope(model, {**common, **fields, "seq": first + i}, source)
                 for i, (model, fields) in enumerate(drafts)]
    unsent = [raw for raw in run.outbox if int(raw["data"]["seq"]) > sent_upto]
    run.outbox = [*unsent, *(e.model_dump() for e in envelopes)]
    return envelopes


@cache
def _wire_fields(model: type[v1.RunEvent]) -> tuple[tuple[str, str, bool, Any], ...]:
    """(field, its key in the data, required, default) of each of `model`'s fields, in order."""
    return tuple((name, field.alias or name, field.is_required(), field.get_default(call_default_factory=True))
                 for name, field in model.model_fields.items())


def _envelope(model: type[v1.RunEvent], fields: dict[str, Any], source: str) -> Envelope:
    """The envelope of one event, its data made from `fields` (JSON values) as `model` would dump it
    but without building it: most events are never decoded in this process (a reader that needs
    the message decodes it once, `Envelope.message`). A missing required field is a KeyError."""
    data = {key: fields[name] if required else fields.get(name, default)
            for name, key, required, default in _wire_fields(model)}
    run_id = fields["run_id"]
    return Envelope(id=f"{run_id}/{fields['seq']}", time=fields["at"], type=model.TYPE, source=source,
                    subject=run_id, data=data)


def _common(run: Run, now: float) -> dict[str, Any]:
    workspace, workflow = split(run.workflow)
    return {"run_id": run.id, "workflow": workflow, "workspace": workspace, "version": run.version,
            "at": to_iso(now)}


def _opening(before: Run | None, run: Run) -> Iterator[Draft]:
    if before is None and run.queued:
        yield v1.RunQueued, {"trigger": _trigger(run)}
    elif (before is None or before.queued) and not run.queued and run.nodes:
        yield v1.RunStarted, {"trigger": _trigger(run)}


def _trigger(run: Run) -> dict[str, Any]:
    t = run.trigger
    shown = v1.EventTrigger(type=t.type, by=t.by, at=to_iso(t.at) if t.at else None, node=t.node)
    return shown.model_dump(mode="json", by_alias=True)


def _node(workflow: Workflow, run: Run, node_id: str, attempt: int) -> dict[str, Any]:
    return {"node_id": node_id, "attempt": attempt, "node_type": workflow.node(node_id).type,
            "node_run_id": node_run_id(node_run_key(run.id, node_id, attempt))}


def _finished(workflow: Workflow, decision: Decision, now: float) -> Iterator[Draft]:
    run = decision.run
    for node_id in decision.finished:
        progress = run.nodes[node_id]
        result = _RESULTS.get(progress.state, "FAILED")
        yield v1.NodeRunCompleted, {**_node(workflow, run, node_id, progress.attempt), "result": result,
                                    "error": _error(run, node_id) if result == "FAILED" else None,
                                    "duration_ms": _ms(now - run.node_started_at.get(node_id, now))}


def _error(run: Run, node_id: str) -> str | None:
    output = run.outputs.get(node_id)
    if isinstance(output, dict) and isinstance(output.get("error"), dict):
        return str(output["error"].get("message"))
    return None


def _waiting(workflow: Workflow, before: Run | None, run: Run) -> Iterator[Draft]:
    for node_id, progress in run.nodes.items():
        earlier = before.nodes.get(node_id) if before is not None else None
        if progress.state == "WAITING" and (earlier is None or earlier.state != "WAITING"):
            yield v1.NodeRunWaiting, _node(workflow, run, node_id, progress.attempt)


def _retrying(workflow: Workflow, decision: Decision, now: float) -> Iterator[Draft]:
    run = decision.run
    for timer in decision.timers:
        yield v1.NodeRunRetrying, {**_node(workflow, run, timer.node_id, timer.attempt - 1),
                                   "next_attempt": timer.attempt, "retry_at": to_iso(timer.due_at),
                                   "error": timer.reason, "duration_ms": _ms(now - run.node_started_at.get(timer.node_id, now))}


def _started(workflow: Workflow, decision: Decision) -> Iterator[Draft]:
    for d in decision.dispatch:
        yield v1.NodeRunStarted, _node(workflow, decision.run, d.node_id, d.attempt)


def _closing(run: Run, decision: Decision) -> Iterator[Draft]:
    if decision.run_completed:
        duration = (run.completed_at or run.updated_at) - run.created_at
        yield v1.RunCompleted, {"result": run.result or "FAILED", "error": run.error, "duration_ms": _ms(duration)}


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
