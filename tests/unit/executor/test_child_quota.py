"""Child-run quotas (services/executor/actions/child_quota.py) on a real SQLite store: counts are
compare-and-set, so concurrent batches never exceed a limit together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.core.errors import ActionError
from libs.core.limits import Limits
from libs.core.run import Run
from libs.store.sqlite import SqliteStore
from services.executor.actions.child_quota import ChildQuota


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "quota.db"))
    await s.open()
    yield s
    await s.close()


async def test_children_of_one_run_are_bounded(store: SqliteStore) -> None:
    quota = ChildQuota(store, lambda: 0.0, Limits(max_child_runs_per_run=5))
    root = Run(id="wfr_root", workflow="w", version=1)
    await quota.reserve(root, 3)
    with pytest.raises(ActionError, match=r"would make 6 for run wfr_root, over the limit of 5 "
                                          r"\(STEPLINE_MAX_CHILD_RUNS_PER_RUN\)") as refused:
        await quota.reserve(root, 3)
    assert not refused.value.retryable
    await quota.reserve(root, 2)


async def test_concurrent_reservations_never_pass_the_limit(store: SqliteStore) -> None:
    quota = ChildQuota(store, lambda: 0.0, Limits(max_child_runs_per_run=100, max_child_runs_per_root_run=7))
    root = Run(id="wfr_root", workflow="w", version=1)
    await store.insert_run(root)
    children = [Run(id=f"wfr_c{i}", workflow="w", version=1, parent_run_id="wfr_root", depth=1) for i in range(12)]
    outcomes = await asyncio.gather(*(quota.reserve(child, 1) for child in children), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, ActionError)]
    assert len(refused) == 5 and all("STEPLINE_MAX_CHILD_RUNS_PER_ROOT_RUN" in e.message for e in refused)
