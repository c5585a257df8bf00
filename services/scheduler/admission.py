"""Concurrency slots (workflow `concurrencyLimit`) kept in an entry per workflow and changed with
compare-and-set, so schedulers of different partitions agree on who runs.

Repairs itself: a run that holds a slot but is already completed (its release was lost to a crash)
or was never inserted (a crash right after taking the slot, older than `ORPHAN_SECONDS`) gives its
slot back the next time a run of the workflow has to wait.
"""

from __future__ import annotations

from collections.abc import Callable

from libs.core import concurrency
from libs.core.concurrency import Slots
from libs.core.errors import NotFoundError
from libs.store.ports import Store
from libs.store.races import LOST, Lost, until_won

KIND = "run-slots"
ORPHAN_SECONDS = 60.0

Change = Callable[[Slots], tuple[Slots, list[str]]]


class Admission:
    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    async def request(self, workflow: str, run_id: str, limit: int) -> list[str]:
        """Ask for a slot for `run_id`; the runs admitted by this change (maybe `run_id`)."""
        admitted = await self._change(workflow, lambda s: concurrency.request(s, run_id, limit, self.clock()))
        if run_id in admitted:
            return admitted
        return admitted + await self._collect_orphans(workflow, limit, exclude=run_id)

    async def release(self, workflow: str, run_id: str, limit: int) -> list[str]:
        return await self._change(workflow, lambda s: concurrency.release(s, run_id, limit, self.clock()))

    async def holds_slot(self, workflow: str, run_id: str) -> bool:
        entry = await self.store.get_entry(KIND, workflow)
        return entry is not None and run_id in Slots.of(entry.data).running

    async def _collect_orphans(self, workflow: str, limit: int, *, exclude: str) -> list[str]:
        """Free the slots of completed or never-inserted runs; the runs that this admits."""
        entry = await self.store.get_entry(KIND, workflow)
        if entry is None:
            return []
        slots = Slots.of(entry.data)
        now = self.clock()
        admitted: list[str] = []
        for run_id, since in list(slots.running.items()):
            if run_id == exclude:
                continue
            try:
                done = (await self.store.get_run(run_id)).status == "COMPLETED"
            except NotFoundError:
                done = now - since > ORPHAN_SECONDS
            if done:
                admitted += await self.release(workflow, run_id, limit)
        return admitted

    async def _change(self, workflow: str, change: Change) -> list[str]:
        async def attempt() -> list[str] | Lost:
            entry = await self.store.get_entry(KIND, workflow)
            slots, admitted = change(Slots.of(entry.data if entry else None))
            if entry is None:
                _, inserted = await self.store.insert_entry(KIND, workflow, slots.data(), now=self.clock())
                return admitted if inserted else LOST
            if await self.store.replace_entry(KIND, workflow, slots.data(), expected_rev=entry.rev,
                                              now=self.clock()) is not None:
                return admitted
            return LOST

        return await until_won(attempt, f"the concurrency slots of {workflow!r}")
