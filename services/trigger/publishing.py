"""Handing commands to the scheduler: every API command goes to the run-commands topic, keyed by run."""

from __future__ import annotations

from libs.bus.ports import Bus
from libs.contracts import topics, v1, wrap

SOURCE = "stepline/trigger"


async def send_command(bus: Bus, message: v1.Message) -> None:
    """Publish `message` on RUN_COMMANDS in a CloudEvents envelope (BusError if the bus refuses it)."""
    await bus.publish(topics.RUN_COMMANDS, wrap(message, source=SOURCE))
