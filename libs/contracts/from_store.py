"""Between stored records and wire messages, in one place: the wire types (v1.py) know nothing of the
records the store keeps, and each translation is written once."""

from __future__ import annotations

from collections.abc import Iterable

from libs.contracts import v1
from libs.core.run import LogEntry, NodeRun, Run


def node_result(record: NodeRun) -> v1.NodeResult:
    """The result a stored node run stands for (COMPLETED, or WAITING): what gets re-published
    whenever a redelivery finds the attempt already finished."""
    outcome = record.outcome()
    return v1.NodeResult(run_id=record.run_id, node_id=record.node_id, attempt=record.attempt,
                         node_run_key=record.key, result=outcome.result, output=outcome.output,
                         error=outcome.error, retryable=outcome.retryable, branch=outcome.branch,
                         waiting=outcome.waiting)


def log_lines(entries: Iterable[LogEntry]) -> list[v1.LogLine]:
    """Log entries as a completion command carries them."""
    return [v1.LogLine(logLevel=e.logLevel, log=e.log, tags=e.tags, createdAt=e.createdAt, source=e.source)
            for e in entries]


def log_entries(lines: Iterable[v1.LogLine]) -> tuple[LogEntry, ...]:
    """A completion command's log lines as the node run stores them."""
    return tuple(LogEntry(logLevel=x.logLevel, log=x.log, tags=x.tags, createdAt=x.createdAt, source=x.source)
                 for x in lines)


def run_context(run: Run) -> v1.RunContext:
    """What a node's templates see of its run (secrets excluded), as the run stands."""
    return v1.RunContext(outputs=run.outputs, inputs=run.inputs, trigger=run.trigger.model_dump())
