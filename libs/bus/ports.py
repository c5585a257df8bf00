"""The bus port: publish enveloped messages keyed by run id; consume them per service group.

Semantics every adapter keeps (`MemoryBus`, later `KafkaBus`):
- a topic has N partitions; a message goes to `hash(key) % N`, so one run's messages stay ordered;
- each consumer group gets every message; within a group one consumer task per partition handles
  messages one at a time, in order;
- a message is acknowledged (offset committed) only after its handler returns; if the handler raises
  a retryable error the same message is delivered again (after a short backoff); after
  `max_deliveries` failed deliveries, or at once for a non-retryable error, it goes to the
  dead-letter topic with its error and the partition moves on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from libs.contracts.envelope import Envelope

Handler = Callable[[Envelope], Awaitable[None]]


@dataclass(frozen=True)
class ForTypes:
    """A handler of some message types only: the others are acknowledged without calling it. Any
    adapter may pass them over before a delivery (the in-memory bus by the envelope's type, Kafka by a
    record's `ce_type` header, before decoding it), so a consumer group that reads a few types of a
    busy topic pays nothing for the rest."""

    types: frozenset[str]
    handler: Handler

    async def __call__(self, envelope: Envelope) -> None:
        if envelope.type in self.types:
            await self.handler(envelope)


class Bus(Protocol):
    async def start(self) -> None:
        """Start consuming for every subscription registered so far."""
        ...

    async def stop(self) -> None:
        """Stop consuming: finish the message in hand in each partition, then return."""
        ...

    async def publish(self, topic: str, envelope: Envelope) -> None:
        """Durably hand over one message (keyed by `envelope.key`); BusError if it cannot."""
        ...

    async def publish_all(self, messages: Sequence[tuple[str, Envelope]]) -> None:
        """Hand over several (topic, envelope) messages, in this order, awaiting them together (Kafka:
        they share produce requests); BusError if one fails (the others may have gone)."""
        ...

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        """Register a handler for `topic` in consumer `group`; call before `start()`."""
        ...

    async def add_subscription(self, topic: str, group: str, handler: Handler, *, external: bool = False) -> None:
        """Subscribe at runtime (topics named by live definitions): before `start()` it is `subscribe`;
        after, that group's consumers start before it returns, reading from the group's committed
        position (the oldest retained message for a new group). ValueError if the group already
        subscribes to `topic`; BusError once the bus is stopping. `external`: the topic takes messages
        from outside Stepline, and an adapter that reads raw records hands a JSON value that is not
        an envelope to the handler as a `v1.ExternalMessage` envelope instead of dead-lettering it."""
        ...
