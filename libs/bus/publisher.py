"""The one way a service publishes: a message goes, in an envelope from the service's `source`, to
its type's topic (`v1.Message.TOPIC`). Each service builds one `Publisher` with its bus and the
source that names it."""

from __future__ import annotations

from collections.abc import Sequence

from libs.bus.ports import Bus
from libs.contracts import Envelope, v1, wrap


class Publisher:
    __slots__ = ("bus", "source")

    def __init__(self, bus: Bus, source: str) -> None:
        self.bus = bus
        self.source = source

    async def publish(self, message: v1.Message) -> None:
        """`message` in an envelope on its topic (BusError if the bus refuses it)."""
        await self.bus.publish(message.TOPIC, wrap(message, source=self.source))

    async def publish_envelopes(self, envelopes: Sequence[Envelope]) -> None:
        """Envelopes built earlier (stored run events relayed), each on its message type's topic, in
        this order, awaited together (`Bus.publish_all`)."""
        await self.bus.publish_all([(v1.MESSAGE_TYPES[e.type].TOPIC, e) for e in envelopes])

    def wrap(self, message: v1.Message) -> Envelope:
        """`message` in an envelope from this service, to publish later (`publish_envelopes`)."""
        return wrap(message, source=self.source)
