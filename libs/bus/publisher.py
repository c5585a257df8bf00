"""The one way a service publishes: a message goes, in an envelope from the service's `source`, to
its type's topic (`v1.Message.TOPIC`). Each service builds one `Publisher` with its bus and the
source that names it."""

from __future__ import annotations

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

    async def publish_envelope(self, envelope: Envelope) -> None:
        """An envelope built earlier (a stored run event relayed) on its message type's topic."""
        await self.bus.publish(v1.MESSAGE_TYPES[envelope.type].TOPIC, envelope)

    def wrap(self, message: v1.Message) -> Envelope:
        """`message` in an envelope from this service, to publish later (`publish_envelope`)."""
        return wrap(message, source=self.source)
