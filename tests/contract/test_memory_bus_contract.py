"""`MemoryBus` against the bus contract."""

from __future__ import annotations

from libs.bus.memory import MemoryBus
from libs.bus.ports import Bus

from .bus_contract import BusContract


class TestMemoryBus(BusContract):
    async def make_bus(self, *, partitions: int = 8, max_deliveries: int = 5,
                       redelivery_backoff: float = 0.0) -> Bus:
        return MemoryBus(partitions, max_deliveries=max_deliveries, redelivery_backoff=redelivery_backoff)
