"""Timers that complete a waiting node: a DELAY's `delay` timer and an APPROVAL's `approval-sla`.

When a DELAY or APPROVAL node run waits, its output says until when (`resumeAt`, `deadline`); the
scheduler stores a timer due then (insert-if-absent on `{kind}:{node run key}`, so re-ensuring it
is harmless). Firing completes the node run with one conditional update from WAITING, so an
approval decided just before its SLA, or a timer fired twice, completes it exactly once. Timers are
in the store, so a wait survives a restart: the sweeper fires whatever fell due meanwhile.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from libs.contracts import v1
from libs.core.errors import NotFoundError
from libs.core.instants import parse_instant
from libs.core.node_kinds import KINDS, completed_by
from libs.core.run import FINISHED_BY_TIMER, NodeRun, Outcome
from libs.expressions import evaluate as expressions
from libs.store.ports import Timer
from services.scheduler.completion import succeeded

if TYPE_CHECKING:
    from services.scheduler.handlers import Scheduler

log = logging.getLogger("stepline.scheduler")


def timer_of(record: NodeRun) -> Timer | None:
    """The timer a waiting DELAY or APPROVAL node run needs (`NodeKind.timed`; None: another type,
    or an approval without SLA)."""
    kind = KINDS.get(record.node_type)
    if kind is None or kind.timed is None:
        return None
    output = record.output if isinstance(record.output, dict) else {}
    field = kind.timed.due_field
    due = output.get(field)
    if not isinstance(due, str):
        return None
    try:
        due_at = parse_instant(due)
    except ValueError:
        log.error("node run %s waits with an unreadable %s %r", record.key, field, due)
        return None
    timer = kind.timed.timer
    return Timer(id=f"{timer}:{record.key}", run_id=record.run_id, kind=timer, due_at=due_at,
                 payload={"node_run_key": record.key})


async def ensure_timer(scheduler: Scheduler, record: NodeRun) -> None:
    timer = timer_of(record)
    if timer is not None and await scheduler.store.put_timer(timer):
        scheduler.wake_at(timer)


async def fire(scheduler: Scheduler, msg: v1.FireTimer) -> None:
    key = str(msg.payload.get("node_run_key"))
    try:
        record = await scheduler.store.get_node_run(key)
    except NotFoundError:
        return
    if record.status != "WAITING":
        return
    outcome = await _outcome(scheduler, record)
    done = await scheduler.store.finish_node_run(key, outcome, now=scheduler.clock(),
                                                 from_statuses=FINISHED_BY_TIMER)
    if done is not None:
        await scheduler.apply_stored(done)


async def _outcome(scheduler: Scheduler, record: NodeRun) -> Outcome:
    """A DELAY (completed by its timer) has waited; an APPROVAL's SLA has passed without a decision."""
    waited: dict[str, Any] = record.output if isinstance(record.output, dict) else {}
    if completed_by(record.node_type) == "timer":
        return await _success(scheduler, record, {"waitedUntil": waited.get("resumeAt")})
    timeout = {"decision": "timeout", "by": None, "comment": None, "payload": None}
    if waited.get("onTimeout") == "continue":
        return await _success(scheduler, record, timeout)
    error = f"approval timed out: no decision by the deadline {waited.get('deadline')}"
    return Outcome(result="FAILED", output={**timeout, "error": {"message": error}}, error=error)


async def _success(scheduler: Scheduler, record: NodeRun, output: dict[str, Any]) -> Outcome:
    """SUCCESS with the node's `variables` applied to `output`, as for any completion."""
    run, _ = await scheduler.runs.get(record.run_id)
    workflow = await scheduler.definitions.get(run.workflow, run.version)
    return succeeded(await expressions.shaped_output(workflow, record.node_id, output))
