"""One loop renews the leases of an executor's attempts that run for a third of the lease or longer."""

from __future__ import annotations

import asyncio

from libs.core.errors import StoreUnavailableError
from services.executor.leases import Leases

LEASE = 0.3


class RenewingStore:
    """Records renewals; answers as told per key (True, False, or raises)."""

    def __init__(self, answers: dict[str, object] | None = None) -> None:
        self.renewed: list[str] = []
        self.answers = answers or {}
        self.seen = asyncio.Event()

    async def renew_lease(self, key: str, *, owner: str, lease_until: float) -> bool:
        self.renewed.append(key)
        self.seen.set()
        answer = self.answers.get(key, True)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    async def renewals_of(self, key: str, count: int) -> None:
        while self.renewed.count(key) < count:
            self.seen.clear()
            await self.seen.wait()


def leases_on(store: RenewingStore) -> Leases:
    return Leases(store, owner="executor-1", clock=lambda: 1000.0, lease_seconds=LEASE)  # type: ignore[arg-type]


async def test_an_attempt_held_past_a_third_of_the_lease_is_renewed_every_third() -> None:
    store = RenewingStore()
    leases = leases_on(store)
    leases.hold("long")
    await asyncio.wait_for(store.renewals_of("long", 3), timeout=5)
    leases.release("long")
    await asyncio.wait_for(leases.loop, timeout=5)  # type: ignore[arg-type]
    assert leases.loop is not None and leases.loop.done(), "nothing held: the loop ends"


async def test_an_attempt_released_before_a_pass_is_never_renewed() -> None:
    store = RenewingStore()
    leases = leases_on(store)
    leases.hold("short")
    leases.release("short")
    leases.hold("long")
    await asyncio.wait_for(store.renewals_of("long", 2), timeout=5)
    assert "short" not in store.renewed


async def test_a_lost_lease_stops_its_renewals_and_a_store_error_only_delays_one() -> None:
    store = RenewingStore({"lost": False, "flaky": StoreUnavailableError("down")})
    leases = leases_on(store)
    for key in ("lost", "flaky"):
        leases.hold(key)
    await asyncio.wait_for(store.renewals_of("flaky", 3), timeout=5)
    assert store.renewed.count("lost") == 1 and "lost" not in leases.held
    assert "flaky" in leases.held
    leases.release("flaky")


async def test_the_loop_starts_again_with_the_next_attempt_after_it_ended() -> None:
    store = RenewingStore()
    leases = leases_on(store)
    leases.hold("first")
    leases.release("first")
    await asyncio.wait_for(leases.loop, timeout=5)  # type: ignore[arg-type]
    leases.hold("second")
    await asyncio.wait_for(store.renewals_of("second", 1), timeout=5)
    leases.release("second")
