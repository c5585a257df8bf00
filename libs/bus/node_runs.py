"""What a stored node run stands for, published again: the one re-publish path of the executor and
the scheduler whenever a redelivery, a lost race or a repair finds an attempt further along than
the message in hand."""

from __future__ import annotations

from collections.abc import Callable

from libs.bus.publisher import Publisher
from libs.contracts import from_store, v1
from libs.core.run import NodeRun

REPORTED = frozenset({"COMPLETED", "WAITING"})
"""Node-run statuses that stand for a result: the outcome, or a waiting result the run may not have applied."""


async def republish(publisher: Publisher, record: NodeRun, *,
                    execute: Callable[[], v1.ExecuteNode] | None = None) -> None:
    """The result of a COMPLETED or WAITING node run; while it is PENDING or RUNNING, `execute()` to
    re-drive it (a live lease makes the executor ignore it), or nothing without `execute`."""
    if record.status in REPORTED:
        await publisher.publish(from_store.node_result(record))
    elif execute is not None:
        await publisher.publish(execute())
