"""The publish hook of the audit log in distributed mode: each stored record onto `stepline.audit.v1`."""

from __future__ import annotations

from libs.audit.chain import AuditRecord
from libs.audit.log import Publish
from libs.bus.publisher import Publisher
from libs.contracts import v1


def message_of(record: AuditRecord) -> v1.AuditRecorded:
    return v1.AuditRecorded(run_id=v1.AUDIT_KEY, record=record.data())


def bus_publisher(publisher: Publisher) -> Publish:
    """`AuditLog(store, publish=bus_publisher(publisher))`."""

    async def publish(record: AuditRecord) -> None:
        await publisher.publish(message_of(record))

    return publish
