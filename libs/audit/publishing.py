"""The publish hook of the audit log in distributed mode: each stored record onto `stepline.audit.v1`."""

from __future__ import annotations

from libs.audit.chain import AuditRecord
from libs.audit.log import Publish
from libs.bus.ports import Bus
from libs.contracts import topics, v1, wrap


def message_of(record: AuditRecord) -> v1.AuditRecorded:
    return v1.AuditRecorded(run_id=v1.AUDIT_KEY, record=record.data())


def bus_publisher(bus: Bus, *, source: str) -> Publish:
    """`AuditLog(store, publish=bus_publisher(bus, source="stepline/trigger"))`."""

    async def publish(record: AuditRecord) -> None:
        await bus.publish(topics.AUDIT, wrap(message_of(record), source=source))

    return publish
