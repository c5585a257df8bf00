"""Child-run quotas: how many child runs one run's nodes may start (`max_child_runs_per_run`) and how
many the whole tree under one top-level run may hold (`max_child_runs_per_root_run`), so a FOREACH
that calls its own workflow cannot fan out into thousands of runs.

A batch's children are counted before the batch is recorded, with a compare-and-set on one counter
entry per run (`child-run-counts`, keys `run/{id}` and `root/{id}`). A re-performed attempt whose
batch exists counts nothing again; a crash between counting and recording counts that batch twice,
which errs on the side of refusing."""

from __future__ import annotations

from collections.abc import Callable

from libs.core.errors import ActionError, ConcurrentUpdateError
from libs.core.limits import Limits
from libs.core.run import Run
from libs.store.ports import Store
from libs.store.races import LOST, Lost, until_won

KIND = "child-run-counts"


class ChildQuota:
    def __init__(self, store: Store, clock: Callable[[], float], limits: Limits) -> None:
        self.store = store
        self.clock = clock
        self.limits = limits

    async def reserve(self, parent: Run, count: int) -> None:
        """Count `count` more children of `parent`; ActionError (not retryable) over either limit."""
        root = await self.root_of(parent)
        await self._take(f"run/{parent.id}", count, self.limits.max_child_runs_per_run,
                         f"run {parent.id}", "STEPLINE_MAX_CHILD_RUNS_PER_RUN")
        await self._take(f"root/{root}", count, self.limits.max_child_runs_per_root_run,
                         f"the runs under top-level run {root}", "STEPLINE_MAX_CHILD_RUNS_PER_ROOT_RUN")

    async def root_of(self, run: Run) -> str:
        while run.parent_run_id is not None:
            run = await self.store.get_run(run.parent_run_id)
        return run.id

    async def _take(self, key: str, count: int, limit: int, whose: str, setting: str) -> None:
        async def attempt() -> Lost | None:
            entry = await self.store.get_entry(KIND, key)
            total = (entry.data.get("total", 0) if entry is not None else 0) + count
            if total > limit:
                raise ActionError(f"starting {count} more child run{'s' if count != 1 else ''} would make "
                                  f"{total} for {whose}, over the limit of {limit} ({setting})")
            if entry is None:
                _, inserted = await self.store.insert_entry(KIND, key, {"total": total}, now=self.clock())
                return None if inserted else LOST
            replaced = await self.store.replace_entry(KIND, key, {"total": total}, expected_rev=entry.rev,
                                                      now=self.clock())
            return None if replaced is not None else LOST

        try:
            await until_won(attempt, f"the child-run count of {whose}")
        except ConcurrentUpdateError:
            raise ActionError(f"could not count the child runs of {whose}: too many concurrent updates",
                              retryable=True) from None
